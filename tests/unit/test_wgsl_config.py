"""The TOML configs (engine.toml, wgsl_generation.toml): defaults, one-line errors naming the key, init."""

import pytest

from nanochat_plugins.wgsl import config
from nanochat_plugins.wgsl.errors import WgslError


def messages(text, kind="generation"):
    with pytest.raises(config.ConfigError) as e:
        config.parse(text, "f.toml", kind)
    return [i.message for i in e.value.issues]


@pytest.mark.parametrize("kind", ["engine", "generation"])
def test_the_default_files_read_back_as_the_defaults(kind):
    assert config.parse(config.default_text(kind), "x.toml", kind) == config.KINDS[kind]()


def test_wrong_types_are_one_line_each_naming_the_key():
    got = messages('[training]\nbatch_size = "8"\nlr_scale = true\n[model]\nnum_layers = 2.5\n'
                   '[dataset]\nval_families = "image.flip"\n')
    assert got == [
        "f.toml: model.num_layers: Input should be a valid integer (got 2.5)",
        "f.toml: training.batch_size: Input should be a valid integer (got '8')",
        "f.toml: training.lr_scale: Input should be a valid number (got True)",
        "f.toml: dataset.val_families: Input should be a valid list (got 'image.flip')",
    ]
    assert all("\n" not in m for m in got)


def test_unknown_keys_bad_values_and_cross_checks():
    assert messages("[model]\ndropout = 0.1\n") == [
        "f.toml: model.dropout: unknown key: remove it or use one of: architecture, num_layers, d_model, nhead, "
        "max_seq_len"]
    assert messages('[task]\ntask_type = "translation"\n')[0].startswith("f.toml: task.task_type: Input should be")
    assert messages("[model]\nnhead = 3\n") == ["f.toml: model: d_model=256 is not a multiple of nhead=3"]
    assert "tokenizer.max_length=2048 is over model.max_seq_len=1024" in messages("[tokenizer]\nmax_length = 2048\n")[0]
    assert messages('[dataset]\ntest_families = ["image.flip"]\n') == [
        "f.toml: dataset: image.flip is in both val_families and test_families: keep it in one"]
    assert "unknown family 'nope'" in messages('[dataset]\nval_families = ["nope"]\n')[0]
    assert messages('log_level = "LOUD"\n[paths]\nlog_path = " "\n', "engine") == [
        "f.toml: log_level: Input should be 'DEBUG', 'INFO', 'WARN' or 'ERROR' (got 'LOUD')",
        "f.toml: paths.log_path: must not be empty (got ' ')"]


def test_broken_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "wgsl_generation.toml"
    bad.write_text("[model\nnum_layers = 2\n")
    with pytest.raises(config.ConfigError, match=r"not valid TOML \(.*\): fix the syntax"):
        config.load(bad)
    bad.write_bytes(b'[task]\nname = "\xff\xfe"\n')
    with pytest.raises(WgslError, match="not UTF-8 text"):
        config.load(bad)
    with pytest.raises(WgslError, match="no such file: `nanochat-cli wgsl init`"):
        config.load(tmp_path / "missing.toml")
    with pytest.raises(WgslError, match="is a folder"):
        config.load(tmp_path, "engine")


def test_init_writes_both_files_and_keeps_existing_ones(tmp_path):
    d = tmp_path / "config"
    written = config.init(d)
    assert [p.name for p in written] == ["engine.toml", "wgsl_generation.toml"]
    assert config.load(d / "engine.toml") == config.EngineConfig()
    assert config.load(d / "wgsl_generation.toml") == config.GenerationConfig()
    with pytest.raises(WgslError, match="exists: keep it, or pass --force"):
        config.init(d)
    (d / "engine.toml").write_text('log_level = "DEBUG"\n')
    config.init(d, force=True)
    assert config.load(d / "engine.toml").log_level == "INFO"
    assert not list(d.glob(".*.tmp"))


def test_list_and_resolve(tmp_path):
    config.init(tmp_path)
    (tmp_path / "broken.toml").write_text("[training]\nnum_epochs = 0\n")
    rows = {p.stem: (kind, problem) for p, kind, problem in config.list_configs(tmp_path)}
    assert rows["engine"] == ("engine", None) and rows["wgsl_generation"] == ("generation", None)
    assert "training.num_epochs: Input should be greater than or equal to 1 (got 0)" in rows["broken"][1]
    assert config.resolve("engine", tmp_path) == tmp_path / "engine.toml"
    assert config.resolve(str(tmp_path / "x.toml"), "elsewhere") == tmp_path / "x.toml"
    with pytest.raises(WgslError, match="no such folder"):
        config.list_configs(tmp_path / "nope")
