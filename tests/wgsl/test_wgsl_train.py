"""A real (short) WGSL training run under torchrun through `nanochat-cli wgsl train`, then generate and eval
on its checkpoint: the pipeline end to end. The model is far too small and short to be good; the figures of a
real run are in docs/wgsl.md."""

import json
import os
import subprocess
import sys

import pytest


def cli(*args, env):
    return subprocess.run([sys.executable, "-m", "nanochat_cli", "wgsl", *args], capture_output=True, text=True,
                          env=env, timeout=600)


@pytest.mark.slow
def test_train_resume_generate_and_eval(tmp_path):
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(tmp_path), "NANOCHAT_CLI_CONFIG_DIR": str(tmp_path / "cfg")}
    sets = ["model.depth=1", "model.max_seq_len=704", "training.device_batch_size=1",
            "training.total_batch_size=1408", "training.num_iterations=2", "telemetry.eval_every=2",
            "telemetry.eval_tokens=1408", "telemetry.sample_every=2", "telemetry.save_every=2",
            "data.data_source_options=samples=1;max_new_tokens=16"]
    r = cli("train", "--headless", "--name", "t", "--set", *sets, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    telemetry = [json.loads(x) for x in (tmp_path / "runs" / "t" / "telemetry.jsonl").read_text().splitlines()]
    samples = [e for e in telemetry if e["event"] == "plugin" and e["plugin"] == "wgsl"]
    assert [e["kind"] for e in samples] == ["samples"] and samples[0]["data"]["n"] == 1
    assert 0 <= samples[0]["data"]["validity"] <= 1
    r = cli("train", "--headless", "--name", "t", "--resume", "--set", *sets[:4], "training.num_iterations=3",
            "telemetry.eval_every=-1", "telemetry.sample_every=-1", "telemetry.save_every=-1", sets[-1], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    ckpt = tmp_path / "base_checkpoints" / "t"
    assert (ckpt / "model_000003.pt").is_file()
    r = cli("generate", "--checkpoint", str(ckpt), "--case", "chromatic.gamma-000", "--beam", "2", "--retries", "3",
            "--max-new-tokens", "24", "-o", str(tmp_path / "g.wgsl"), env=env)
    assert r.returncode in (0, 1) and "Traceback" not in r.stderr and "error:" not in r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("// WGSL") or lines[0].startswith("// ")
    assert any(ln.startswith("-- validation: ") for ln in lines) and (tmp_path / "g.wgsl").is_file()
    r = cli("eval", "--checkpoint", str(ckpt), "--limit", "2", "--modes", "greedy,retry2", "--max-new-tokens", "16",
            "--json", str(tmp_path / "e.json"), env=env)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "e.json").read_text())["results"]
    assert set(res) == {"greedy", "retry2"} and res["greedy"]["n"] == 2
    # the Chat mode claims the checkpoint and answers with a highlighted shader and its checks
    code = ("from pathlib import Path; from nanochat_cli.plugin_api import ModeRequest; "
            "from nanochat_plugins.wgsl import chat_mode as m; import sys; p = Path(sys.argv[1]); "
            "assert m.claims(p); r = m.run(ModeRequest('chromatic.gamma-000', p, max_tokens=16)); "
            "print(r.language, r.ok, len(r.validation), r.validation[0].split(':')[0])")
    r = subprocess.run([sys.executable, "-c", code, str(ckpt)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    language, ok, n, first = r.stdout.split()
    assert (language, first) == ("wgsl", "validation") and ok in ("True", "False") and n in ("1", "2")
