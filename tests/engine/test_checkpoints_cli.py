"""`nanochat-cli checkpoints list|delete`, `chat` and `eval` through main(argv)."""

import json

import pytest
import torch
from ckpt_helpers import save_ours, tiny_config_overrides, tiny_model, train_tokenizer, write_data_dir

from engine.checkpoint import checkpoint_dir
from nanochat_cli.cli import main


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return train_tokenizer(tmp_path_factory.mktemp("tok") / "tokenizer")


@pytest.fixture
def setup(tmp_path, tok):
    data = write_data_dir(tmp_path / "data")
    base = tmp_path / "base"
    save_ours(base, "tiny", 5, tiny_model(300), tok, data)
    save_ours(base, "deep", 2, tiny_model(300, depth=3), tok, data)
    t = save_ours(base, "trunc", 1, tiny_model(300), tok, data)
    blob = (t / "model_000001.pt").read_bytes()
    (t / "model_000001.pt").write_bytes(blob[: len(blob) // 2])
    sets = [f"{k}={'none' if v is None else v}" for k, v in tiny_config_overrides(base, data, tok.directory).items()]
    return base, data, sets


def test_checkpoints_list_json_and_compatible_filter(setup, capsys):
    base, _, sets = setup
    assert main(["checkpoints", "list", "--prefab", "cpu-tiny", "--set", *sets, "--json"]) == 0
    rows = {r["tag"]: r for r in json.loads(capsys.readouterr().out)}
    assert {t: r["compat"]["level"] for t, r in rows.items()} == {
        "tiny": "compatible", "deep": "incompatible", "trunc": "incompatible"}
    assert rows["deep"]["compat"]["reasons"][0]["remedy"] == "set model.depth=3"
    assert rows["trunc"]["status"] == "corrupt" and rows["tiny"]["resumable"] is True
    assert main(["checkpoints", "list", "--prefab", "cpu-tiny", "--set", *sets, "--json", "--compatible"]) == 0
    assert [r["tag"] for r in json.loads(capsys.readouterr().out)] == ["tiny"]


def test_checkpoints_list_table(setup, capsys):
    base, _, sets = setup
    assert main(["checkpoints", "list", "--prefab", "cpu-tiny", "--set", *sets]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "compatible" in out and "corrupt" in out
    assert "deep step 2: error: architecture differs: depth 3 (config: 2), model_dim 96 (config: 64)" in out
    assert "— fix: set model.depth=3\n" in out


def test_checkpoints_list_uses_the_tui_state_without_prefab(setup, tok, capsys):
    from nanochat_cli.services.state import UIState, save_state

    base, data, _ = setup
    overrides = {**tiny_config_overrides(base, data, tok.directory), "model.depth": 3}
    save_state(UIState(prefab="cpu-tiny", overrides=overrides))
    assert main(["checkpoints", "list", "--json"]) == 0
    rows = {r["tag"]: r["compat"]["level"] for r in json.loads(capsys.readouterr().out)}
    assert rows == {"deep": "compatible", "tiny": "incompatible", "trunc": "incompatible"}


def test_chat_prompt_streams_one_reply(setup, capsys):
    base, _, _ = setup
    ckpt = checkpoint_dir(base, "tiny")
    (base / "runs" / "tiny").mkdir(parents=True)
    args = ["chat", "--checkpoint", str(ckpt), "-p", "Hello", "--temperature", "0", "--max-tokens", "8"]
    assert main(args) == 0
    first = capsys.readouterr()
    assert "tokens · first token" in first.err and "transcript:" in first.err
    assert list((base / "runs" / "tiny" / "transcripts").glob("*.jsonl"))
    assert main(args + ["--no-transcript"]) == 0
    assert capsys.readouterr().out == first.out  # greedy: the same reply


def test_chat_repl_reads_stdin(setup, capsys, monkeypatch):
    import io

    base, _, _ = setup
    monkeypatch.setattr("sys.stdin", io.StringIO("hi\n/reset\nagain\n/quit\n"))
    assert main(["chat", "--checkpoint", str(checkpoint_dir(base, "tiny") / "model_000005.pt"),
                 "--temperature", "0", "--max-tokens", "4", "--no-transcript"]) == 0
    err = capsys.readouterr().err
    assert err.count("tokens · first token") == 2 and "[history cleared]" in err


def test_eval_prints_report_and_caches_it(setup, capsys):
    base, data, _ = setup
    model_file = checkpoint_dir(base, "tiny") / "model_000005.pt"
    assert main(["eval", "--checkpoint", str(model_file), "--tokens", "256", "--max-new-tokens", "3", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["val_bpb"] > 0 and report["eval_tokens"] == 256 and report["data_dir"] == str(data)
    assert len(report["samples"]) >= 1
    from nanochat_cli.services.checkpoints.registry import CheckpointRegistry

    assert {e.tag: e for e in CheckpointRegistry(base).scan()}["tiny"].eval.val_bpb == report["val_bpb"]
    assert main(["eval", "--checkpoint", str(model_file), "--tokens", "128", "--max-new-tokens", "0"]) == 0
    out = capsys.readouterr().out
    assert "val bpb: " in out and " over 128 tokens of " in out
    # beside the figure the listing shows, each with the tokens it covered (save_ours: 10 × 524288 eval tokens)
    assert "(training's last evaluation: val bpb 2.5000 over 5,242,880 tokens)" in out


def test_bad_checkpoints_give_one_line_errors(setup, capsys):
    base, _, _ = setup
    assert main(["chat", "--checkpoint", str(checkpoint_dir(base, "trunc") / "model_000001.pt"), "-p", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nanochat-cli: error:") and "corrupt" in err and "\n" not in err
    assert main(["eval", "--checkpoint", str(base / "nothing")]) == 2
    assert "no such checkpoint dir" in capsys.readouterr().err


def test_checkpoints_delete(setup, capsys):
    base, _, _ = setup
    d = checkpoint_dir(base, "deep")
    assert main(["checkpoints", "delete", str(d)]) == 2  # stdin is not a terminal: needs --yes
    assert "pass --yes" in capsys.readouterr().err and d.exists()
    assert main(["checkpoints", "delete", str(d), "--yes"]) == 0
    assert "deleted" in capsys.readouterr().out and not d.exists()
    torch.save({}, checkpoint_dir(base, "tiny") / "model_000009.pt")  # an interrupted save can be deleted too
    assert main(["checkpoints", "delete", str(checkpoint_dir(base, "tiny")), "--step", "9", "--yes"]) == 0
    assert not (checkpoint_dir(base, "tiny") / "model_000009.pt").exists()
