"""Prefabs: the shipped set, extends chains, overrides, save-as round trips, read-only rules, diff."""

import os
import re
from pathlib import Path

import pytest
import yaml

from nanochat_cli.services import paths
from nanochat_cli.services.config.diff import diff
from nanochat_cli.services.config.estimate import compat_matrix
from nanochat_cli.services.config.prefabs import PrefabError, PrefabExists, PrefabStore, file_stem
from nanochat_cli.services.config.schema import ConfigError, to_engine_config

SHIPPED = ["tct-cpu", "cpu-tiny", "cpu-tiny-sft", "cpu-tiny-rl", "cpu-tiny-eval", "wgsl-cpu", "cpu-small", "tct-small",
           "tct-medium", "wgsl-gpu", "tct-large", "$10", "$100", "$100-sft", "$100-rl", "$100-eval", "$1000"]
# the embedded-corpus pretraining ladder
BASE_TIERS = [n for n in SHIPPED if not n.endswith(("-sft", "-rl", "-eval")) and not n.startswith(("wgsl", "tct"))]


@pytest.fixture
def store(tmp_path):
    return PrefabStore(user_dir=tmp_path / "user", auth_flags=lambda: {})


def test_shipped_prefabs_resolve_cheapest_first(store):
    assert [p.name for p in store.list()] == SHIPPED
    assert all(p.shipped for p in store.list())
    for name in SHIPPED:
        to_engine_config(store.resolve(name))  # the engine accepts every shipped prefab


def test_default_store_dirs():
    store = PrefabStore()
    assert store.shipped_dir == Path(__file__).resolve().parents[2] / "prefabs"
    assert store.user_dir == paths.user_config_dir() / "prefabs" == Path(os.environ["NANOCHAT_CLI_CONFIG_DIR"],
                                                                           "prefabs")


def test_stage_prefabs_extend_their_tier_and_start_from_the_previous_stage(store):
    for tier, names in (("cpu-tiny", ["cpu-tiny-sft", "cpu-tiny-rl", "cpu-tiny-eval"]),
                        ("$100", ["$100-sft", "$100-rl", "$100-eval"])):
        assert store.resolve(tier)["run.stage"] == "base"
        for name, stage in zip(names, ["sft", "rl", "eval"], strict=True):
            r = store.resolve(name)
            assert store.chain(name)[-2].name == tier
            assert r["run.stage"] == stage and r["run.start_from"] == "auto"
            assert r["hardware.device"] == store.resolve(tier)["hardware.device"]


def test_cpu_tiny_is_a_quick_two_process_cpu_run(store):
    r = store.resolve("cpu-tiny")
    assert r["hardware.device"] == "cpu" and r["hardware.nproc_per_node"] == 2
    assert r["data.source"] == "embedded" and r["data.data_dir"] is None
    info = compat_matrix(r)
    assert info.grad_accum == 1 and info.gpus == 0 and info.est_cost_usd == 0
    assert info.est_hours * 60 < 10  # minutes, on the CPU constants
    evals = info.steps // r["telemetry.eval_every"]
    samples = info.steps // r["telemetry.sample_every"]
    assert 2 <= evals <= 8 and 2 <= samples <= 8


def test_gpu_tiers_grow_in_scale_and_cost(store):
    infos = [compat_matrix(store.resolve(n)) for n in BASE_TIERS]
    tiny, small, usd10, usd100, usd1000 = infos
    assert tiny.params < small.params < usd10.params < usd100.params < usd1000.params
    assert usd10.gpus == 1 and usd100.gpus == 8 and usd1000.gpus == 8
    assert 2 <= usd10.est_cost_usd <= 10 and 30 <= usd100.est_cost_usd <= 100 and 300 <= usd1000.est_cost_usd <= 1000
    for info in (usd10, usd100, usd1000):
        assert info.vram_gb_per_gpu < 80  # each fits an 80 GB H100 by the estimate
    assert small.est_hours > tiny.est_hours and 10 / 60 < small.est_hours < 1.5


def test_tct_tiers_train_on_tct_windows_at_the_sizes_the_issue_gives(store):
    for name, d_model, layers in (("tct-small", 512, 6), ("tct-medium", 768, 8), ("tct-large", 1024, 12)):
        r = store.resolve(name)
        info = compat_matrix(r)
        shape = (info.model_dim, r["model.depth"], r["model.max_seq_len"], r["model.vocab_size"])
        assert shape == (d_model, layers, 512, 8192), name
        assert r["data.data_dir"] == "tct:workflows" and info.gpus == 1 and info.vram_gb_per_gpu < 80
    cpu = store.resolve("tct-cpu")
    assert cpu["hardware.device"] == "cpu" and cpu["data.data_dir"] == "tct:workflows"
    assert compat_matrix(cpu).est_hours * 60 < 10


def test_extends_chain_sets_only_what_differs(store):
    chain = store.chain("$1000")
    assert [p.name for p in chain] == ["$10", "$100", "$1000"]
    assert "model.max_seq_len" not in chain[-1].values
    r = store.resolve("$1000")
    assert r["model.depth"] == 32 and r["model.max_seq_len"] == 2048 and r["hardware.nproc_per_node"] == 8
    assert store.resolve("cpu-small")["hardware.device"] == "cpu"


def test_dollar_names_and_file_stems(store):
    assert file_stem("$10") == "usd10"
    assert store.get("$100").path.name == "usd100.yaml"
    assert store.get("usd100").name == "$100"
    with pytest.raises(PrefabError, match=r"prefab '': not found: .* quote names with \$"):
        store.get("")


def test_overrides_apply_and_bad_ones_raise(store):
    r = store.resolve("cpu-tiny", {"depth": 6, "model.vocab_size": 8192})
    assert r["model.depth"] == 6 and r["model.vocab_size"] == 8192
    with pytest.raises(ConfigError) as e:
        store.resolve("cpu-tiny", {"training.device_batch_size": 7})
    assert str(e.value).startswith("training.total_batch_size: 4096 is not a multiple of")


def test_save_as_reloads_to_the_same_config(store):
    overrides = {"model.depth": 6, "training.num_iterations": 50, "telemetry.wandb": "offline"}
    path = store.save_as("my-exp", "cpu-tiny", overrides)
    assert path == store.user_dir / "my-exp.yaml"
    assert store.resolve("my-exp") == store.resolve("cpu-tiny", overrides)
    doc = yaml.safe_load(path.read_text())
    assert doc["extends"] == "cpu-tiny" and "auth" not in doc
    assert doc["model"] == {"depth": 6} and doc["training"] == {"num_iterations": 50}
    mine = store.get("my-exp")
    assert not mine.shipped and [p.name for p in store.list()][-1] == "my-exp"


def test_save_as_over_itself_and_chained_user_prefabs(store):
    store.save_as("a", "$10", {"model.depth": 12})
    store.save_as("b", "a", {"training.device_batch_size": 16})
    assert store.resolve("b")["model.depth"] == 12
    store.save_as("a", "a", {"model.depth": 14}, overwrite=True)  # re-save keeps a's parent ($10)
    assert store.get("a").extends == "$10" and store.resolve("b")["model.depth"] == 14
    with pytest.raises(PrefabError, match="would make a cycle"):
        store.save_as("a", "b", {}, overwrite=True)


def test_save_as_refuses_overwrite_and_shipped(store):
    store.save_as("x", "cpu-tiny", {"depth": 5})
    with pytest.raises(PrefabExists, match="'x': already exists"):
        store.save_as("x", "cpu-tiny", {"depth": 6})
    assert store.resolve("x")["model.depth"] == 5
    store.save_as("x", "cpu-tiny", {"depth": 6}, overwrite=True)
    assert store.resolve("x")["model.depth"] == 6
    for name in ("$10", "cpu-tiny", "usd10"):
        with pytest.raises(PrefabError, match="read-only"):
            store.save_as(name, "cpu-tiny", {}, overwrite=True)
    with pytest.raises(PrefabError, match="invalid"):
        store.save_as("bad name", "cpu-tiny", {})
    with pytest.raises(ConfigError):
        store.save_as("y", "cpu-tiny", {"depth": 0})
    assert not (store.user_dir / "y.yaml").exists()
    assert sorted(p.name for p in store.user_dir.iterdir()) == ["x.yaml"]  # no temp files left behind


def test_delete(store):
    store.save_as("p", "cpu-tiny", {"depth": 5})
    store.save_as("q", "p", {"depth": 6})
    with pytest.raises(PrefabError, match="extended by q"):
        store.delete("p")
    with pytest.raises(PrefabError, match="read-only"):
        store.delete("cpu-tiny")
    store.delete("q")
    store.delete("p")
    assert [p.name for p in store.list()] == SHIPPED


def _only_broken(store) -> str:
    """The one broken prefab's reason, after checking the shipped ones still list."""
    assert [p.name for p in store.list() if p.shipped] == SHIPPED
    [broken] = store.broken()
    return broken.error


def test_bad_user_files_name_the_file_and_leave_the_others_working(store):
    store.user_dir.mkdir(parents=True)
    bad = store.user_dir / "bad.yaml"
    bad.write_text("name: bad\nmodel:\n  depht: 4\n")
    assert re.search(r"bad.yaml: model.depht: unknown field", _only_broken(store))
    with pytest.raises(PrefabError, match=r"prefab 'bad': cannot be used: .*bad.yaml: model.depht: unknown field"):
        store.resolve("bad")
    bad.write_text("name: bad\nauth:\n  wandb_key_set: true\n")
    assert "read-only" in _only_broken(store)
    bad.write_text("name: cpu-tiny\n")
    assert "already used by" in _only_broken(store)
    assert store.get("cpu-tiny").shipped and store.resolve("cpu-tiny")  # the shipped one keeps its name
    bad.write_text("name: bad\nextends: bad2\n")
    (store.user_dir / "bad2.yaml").write_text("name: bad2\nextends: bad\n")
    with pytest.raises(PrefabError, match="cycle"):
        store.resolve("bad")
    bad.write_text("name: bad\nmodel:\n  depth: 500\n")
    (store.user_dir / "bad2.yaml").unlink()
    with pytest.raises(ConfigError, match=r"bad.yaml: model.depth: 500 is out of range"):
        store.resolve("bad")
    bad.write_text("name: bad\nmodel: [1, 2\n")
    assert "not valid YAML" in _only_broken(store)


def test_resolve_file_outside_the_store(store, tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("extends: cpu-tiny\nmodel:\n  depth: 3\n")
    assert store.resolve_file(f)["model.depth"] == 3
    f.write_text("extends: nope\n")
    with pytest.raises(PrefabError, match=r"run.yaml: extends: prefab 'nope': not found: choose one of .*cpu-tiny"):
        store.resolve_file(f)
    f.write_text("depth: 3\n")
    with pytest.raises(PrefabError, match="depth: unknown category: put it under its category: model:"):
        store.resolve_file(f)


def test_auth_flags_come_from_the_secret_store(tmp_path):
    store = PrefabStore(user_dir=tmp_path / "u", auth_flags=lambda: {"auth.wandb_key_set": True,
                                                                     "auth.hf_token_set": False})
    r = store.resolve("cpu-tiny")
    assert r["auth.wandb_key_set"] is True and r["auth.hf_token_set"] is False


def test_diff_rows_in_display_order(store):
    base = store.resolve("cpu-tiny")
    current = store.resolve("cpu-tiny", {"run.name": "x", "depth": 6, "telemetry.eval_every": 25})
    rows = diff(base, current)
    assert [(r.key, r.category, r.field, r.base, r.current) for r in rows] == [
        ("model.depth", "model", "depth", 4, 6),
        ("telemetry.eval_every", "telemetry", "eval_every", 50, 25),
        ("run.name", "run", "name", "cpu-tiny", "x")]
    assert diff(base, base) == []


def test_saving_over_a_broken_user_file_asks_first(store):
    store.user_dir.mkdir(parents=True)
    broken = store.user_dir / "mine.yaml"
    broken.write_bytes(b"name: mine\ndescription: caf\xe9\n")  # not UTF-8: listed as broken, still the user's file
    with pytest.raises(PrefabExists, match=r"mine.yaml exists \(and cannot be read\): confirm to overwrite"):
        store.save_as("mine", "cpu-tiny", {"model.depth": 3})
    assert broken.read_bytes().endswith(b"caf\xe9\n")
    store.save_as("mine", "cpu-tiny", {"model.depth": 3}, overwrite=True)
    assert store.resolve("mine")["model.depth"] == 3 and store.broken() == []
