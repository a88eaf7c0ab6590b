"""engine.base_eval and engine.rl under `torchrun --nproc_per_node=2` (gloo on the CPU) against one process:
both ranks exit 0, CORE results are identical (each example is scored the same whichever rank takes it), and
RL's step-0 held-out eval and first rollouts are identical (prompt order and sampling seeds depend on the
example, not the rank). After the first update the runs may differ in the last bits: each rank normalises its
loss by its own sampled tokens. Slow: two torchrun launches each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.checkpoint import checkpoint_dir
from tests.helpers.ckpt_helpers import save_ours, tiny_model, train_tokenizer, write_data_dir

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _one_thread():  # the in-process single rank computes like each torchrun rank (OMP_NUM_THREADS=1)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp")
    tok = train_tokenizer(root / "tok", 300)
    save_ours(root / "base", "tiny", 5, tiny_model(tok.get_vocab_size()), tok, write_data_dir(root / "data"))
    return root / "base"


def torchrun(module: str, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", module, "--",
           *flags]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)


def events(base: Path, run: str) -> list[dict]:
    return [json.loads(x) for x in (base / "runs" / run / "telemetry.jsonl").read_text().splitlines()]


def test_base_eval_on_two_ranks_equals_one(base):
    from engine.base_eval import main

    ckpt = checkpoint_dir(base, "tiny")
    flags = ["--base-dir", str(base), "--device-type", "cpu", "--source", str(ckpt), "--max-per-task", "12",
             "--bpb-tokens", "1024", "--device-batch-size", "4", "--samples", "1", "--sample-tokens", "4"]
    assert main([*flags, "--run", "core1"]) == 0
    one = json.loads((ckpt / "eval_core_000005.json").read_text())
    done = torchrun("engine.base_eval", *flags, "--run", "core2")
    assert done.returncode == 0, done.stderr[-3000:]  # torchrun fails when any rank does
    two = json.loads((ckpt / "eval_core_000005.json").read_text())
    assert two["results"] == one["results"] and two["score"] == one["score"]
    assert all(r["n"] == 12 for r in two["results"])
    assert two["samples"] == one["samples"] and two["val_bpb"] > 0
    tel = events(base, "core2")
    assert tel[0]["world_size"] == 2 and tel[-1]["event"] == "run_end" and tel[-1]["status"] == "finished"
    assert [e["value"] for e in tel if e["event"] == "eval_result"] == [r["value"] for r in one["results"]]


def test_rl_on_two_ranks_starts_like_one_and_both_ranks_save(base):
    from engine.rl import main

    ckpt = checkpoint_dir(base, "tiny")
    flags = ["--base-dir", str(base), "--device-type", "cpu", "--source", str(ckpt), "--task", "arithmetic_easy",
             "--num-iterations", "2", "--examples-per-step", "2", "--num-samples", "4", "--device-batch-size", "4",
             "--max-new-tokens", "8", "--eval-every", "-1", "--eval-examples", "6", "--eval-samples", "2",
             "--show-samples", "8", "--init-lr-frac", "1.0"]
    assert main([*flags, "--run", "rl1"]) == 0
    done = torchrun("engine.rl", *flags, "--run", "rl2")
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = events(base, "rl1"), events(base, "rl2")
    assert two[0]["event"] == "run_start" and two[0]["world_size"] == 2
    assert two[-1]["event"] == "run_end" and two[-1]["status"] == "finished" and two[-1]["step"] == 2

    def start_eval(tel: list[dict]) -> dict:
        return {e["metric"]: e["value"] for e in tel if e["event"] == "eval_result" and e["step"] == 0}

    def first_rollout(tel: list[dict]) -> dict:
        (r,) = [e for e in tel if e["event"] == "rollout" and e["step"] == 1]
        return {k: r[k] for k in ("prompts", "reward_mean", "pass_at_k", "mean_len", "max_len", "tool_call_rate",
                                  "samples")}

    assert start_eval(two) == pytest.approx(start_eval(one), abs=1e-12) and start_eval(one)["reward"] >= 0
    assert first_rollout(two) == first_rollout(one)
    assert len([e for e in two if e["event"] == "rollout"]) == 2
    rl_dir = checkpoint_dir(base, "rl2", "rl")
    assert {p.name for p in rl_dir.glob("optim_000002_rank*.pt")} == {"optim_000002_rank0.pt",
                                                                     "optim_000002_rank1.pt"}
    assert json.loads((rl_dir / "meta_000002.json").read_text())["world_size"] == 2
