"""engine.rl: a run killed mid-step resumes exactly; telemetry per step; config and source errors in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from engine.checkpoint import checkpoint_dir, complete_steps, load_meta, load_model_state
from engine.common import DistInfo
from engine.rl import RLConfig, RLTrainer, main
from engine.telemetry import TelemetryWriter
from tests.helpers.ckpt_helpers import save_ours, tiny_model, train_tokenizer


class LetterTask:
    """A task made here: reward is the share of 'e' in the answer (so rewards vary between samples)."""

    name = "letters"
    eval_type = "generative"

    def __init__(self, n: int, offset: int = 0):
        self.n, self.offset = n, offset

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"messages": [{"role": "user", "content": f"write e {i + self.offset}"},
                             {"role": "assistant", "content": "eee"}]}

    def reward(self, conversation: dict, response: str) -> float:
        return response.count("e") / max(1, len(response))

    def evaluate(self, conversation: dict, response: str) -> bool:
        return self.reward(conversation, response) > 0.1


class Boom(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    root = tmp_path_factory.mktemp("src")
    tok = train_tokenizer(root / "tok", 300)
    return save_ours(root / "base", "tiny", 0, tiny_model(tok.get_vocab_size()), tok, None)


def make_trainer(base: Path, source: Path, run: str, **kw) -> tuple[RLTrainer, Path]:
    values = dict(run=run, base_dir=str(base), device_type="cpu", source=str(source), num_iterations=4,
                  examples_per_step=2, num_samples=4, device_batch_size=4, max_new_tokens=10, eval_every=-1,
                  eval_examples=2, eval_samples=2, init_lr_frac=1.0, kl_coef=0.05)
    cfg = RLConfig(**{**values, **kw})
    run_dir = base / "runs" / run
    run_dir.mkdir(parents=True, exist_ok=True)
    tel = TelemetryWriter(run_dir / "telemetry.jsonl", run=run)
    info = DistInfo(ddp=False, rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    trainer = RLTrainer(cfg, info, tel, run_dir)
    trainer.train_task, trainer.eval_task = LetterTask(5), LetterTask(2, 100)
    trainer.setup()
    trainer.emit_start()
    return trainer, run_dir


def events(run_dir: Path, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "telemetry.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "run", "dt", "elapsed", "eta")} for r in rows
            if r["event"] == kind]


@pytest.mark.slow
def test_killed_mid_step_resumes_exactly(tmp_path, source):
    base = tmp_path / "base"
    straight, straight_dir = make_trainer(base, source, "straight")
    assert straight.train() == "finished"

    broken, broken_dir = make_trainer(base, source, "broken", save_every=2)
    real_step = broken.train_step

    def step_then_die(step):
        if step == 3:  # dies after the rollouts of step 3, before its update
            broken.model.eval()
            raise Boom()
        return real_step(step)

    broken.train_step = step_then_die
    with pytest.raises(Boom):
        broken.train()
    assert complete_steps(checkpoint_dir(base, "broken", "rl")) == [2]
    resumed, _ = make_trainer(base, source, "broken", save_every=2, resume=True)
    assert resumed.start_step == 2 and resumed.pos == 4
    assert resumed.train() == "finished"

    a = load_model_state(checkpoint_dir(base, "straight", "rl"), 4)
    b = load_model_state(checkpoint_dir(base, "broken", "rl"), 4)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], load_model_state(source, 0)[k]) for k in a)  # it did learn something
    # the resumed run redid steps 3 and 4 with the same samples
    assert [r for r in events(broken_dir, "rollout") if r["step"] > 2][-2:] == events(straight_dir, "rollout")[2:]
    meta = load_meta(checkpoint_dir(base, "broken", "rl"), 4)
    assert meta["stage"] == "rl" and meta["source"].endswith("model_000000.pt")


def test_rollout_and_step_events_each_step(tmp_path, source):
    trainer, run_dir = make_trainer(tmp_path / "base", source, "one", num_iterations=1, show_samples=2)
    assert trainer.train() == "finished"
    (rollout,) = events(run_dir, "rollout")
    assert rollout["prompts"] == 2 and rollout["k"] == 4 and set(rollout["pass_at_k"]) == {"1", "2", "4"}
    assert 0 <= rollout["reward_mean"] <= 1 and 1 <= rollout["mean_len"] <= rollout["max_len"] <= 10
    assert len(rollout["samples"]) == 2 and rollout["samples"][0]["prompt"].startswith("write e")
    (step,) = events(run_dir, "step")
    assert step["step"] == 1 and step["total"] == 1
    evals = events(run_dir, "eval_result")
    assert {e["suite"] for e in evals} == {"rl"} and {e["step"] for e in evals} == {0, 1}
    assert {"reward", "reward_se", "pass@1"} <= {e["metric"] for e in evals}
    (start,) = events(run_dir, "run_start")
    assert start["stage"] == "rl"


def test_held_out_change_is_paired_over_the_same_prompts_and_seeds(tmp_path, source):
    trainer, run_dir = make_trainer(tmp_path / "base", source, "pair", num_iterations=2, eval_every=1,
                                    eval_examples=4, eval_samples=3)
    trainer.eval_task = LetterTask(4, 100)
    first = trainer.evaluate(0)["reward_mean"]
    assert trainer.evaluate(0)["reward_mean"] == first  # same model, same prompts and seeds: same reward
    assert trainer.train() == "finished"
    got = {(e["step"], e["metric"]): e["value"] for e in events(run_dir, "eval_result")}
    assert (0, "reward_change") in got and got[0, "reward_change"] == 0.0  # the second evaluation at step 0
    means = trainer.eval_start
    assert len(means) == 4 and got[2, "reward_change"] == pytest.approx(got[2, "reward"] - first)
    assert got[2, "reward_change_se"] >= 0
    meta = load_meta(checkpoint_dir(tmp_path / "base", "pair", "rl"), 2)
    assert meta["reward_eval_start"] == means  # a resumed run measures its change from the same start


def test_config_and_source_errors_are_one_line(tmp_path, capsys):
    assert main(["--num-samples", "1", "--base-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "num_samples" in err and "\n" not in err
    assert main(["--base-dir", str(tmp_path), "--device-type", "cpu"]) == 1
    err = capsys.readouterr().err.strip()
    assert "no sft checkpoint" in err and "\n" not in err
    events_ = [json.loads(x) for x in (tmp_path / "runs" / "rl" / "telemetry.jsonl").read_text().splitlines()]
    assert events_[-1]["event"] == "run_end" and events_[-1]["status"] == "failed"


def test_stop_and_patch_requests_are_obeyed(tmp_path, source):
    from engine.control import send_request

    trainer, run_dir = make_trainer(tmp_path / "base", source, "ctl", num_iterations=3)
    send_request(run_dir, "patch", {"lr_scale": 0.5})
    send_request(run_dir, "patch", {"num_samples": 2})  # not hot: rejected, the run goes on
    send_request(run_dir, "stop")
    assert trainer.train() == "stopped"
    assert trainer.cfg.lr_scale == 0.5 and trainer.cfg.num_samples == 4
    acks = events(run_dir, "control_ack")
    assert [a["ok"] for a in acks] == [True, False, True] and "not hot-patchable" in acks[1]["message"]
    (ckpt,) = events(run_dir, "checkpoint")
    assert ckpt["reason"] == "stop" and ckpt["step"] == 0
    assert complete_steps(checkpoint_dir(tmp_path / "base", "ctl", "rl")) == [0]


def test_every_lr_is_scaled_by_init_lr_frac(tmp_path, source):
    """Fixed-lr groups too (smear/backout at 0.2): unscaled, Adam's full-size steps on noisy RL gradients
    wrecked an SFT model within a few steps."""
    from engine.optim import build_optimizer

    trainer, _ = make_trainer(tmp_path / "base", source, "lrs", init_lr_frac=0.05)
    cfg = trainer.cfg
    plain = build_optimizer(trainer.model, embedding_lr=cfg.embedding_lr, unembedding_lr=cfg.unembedding_lr,
                            matrix_lr=cfg.matrix_lr, scalar_lr=cfg.scalar_lr, weight_decay=cfg.weight_decay)
    got = {g["name"]: g["initial_lr"] for g in trainer.optimizer.param_groups}
    want = {g["name"]: 0.05 * g["initial_lr"] for g in plain.param_groups}
    assert got.keys() == want.keys() and all(got[k] == pytest.approx(want[k]) for k in got)
    assert got["smear"] == pytest.approx(0.05 * 0.2)


@pytest.mark.slow
def test_grpo_raises_the_reward_of_a_task_made_here(tmp_path, source):
    """Behaviour, not just formulas: 40 GRPO steps make a random tiny model write more 'e's, in its rollouts and
    on held-out prompts (paired over the same prompts and sampling seeds, so the margin is in standard errors,
    not a ratio that any change of rounding can flip on 2 prompts)."""
    trainer, run_dir = make_trainer(tmp_path / "base", source, "rise", num_iterations=40, init_lr_frac=0.2,
                                    kl_coef=0.0, num_samples=8, examples_per_step=4, device_batch_size=8,
                                    eval_examples=16, eval_samples=8)
    trainer.train_task = LetterTask(50)
    trainer.eval_task = LetterTask(16, 100)
    assert trainer.train() == "finished"
    rollouts = [e["reward_mean"] for e in events(run_dir, "rollout")]
    assert sum(rollouts[-5:]) > 2 * sum(rollouts[:5]), rollouts
    scored = {(e["step"], e["metric"]): e["value"] for e in events(run_dir, "eval_result")}
    change, se = scored[(40, "reward_change")], scored[(40, "reward_change_se")]
    assert change > 3 * se and change > 0.02, (scored[(0, "reward")], scored[(40, "reward")], change, se)


def test_warns_when_max_new_tokens_cuts_reference_answers(tmp_path, source):
    """A cut-off answer always scores 0 and gives GRPO nothing to learn from: the run says so at start."""
    _, run_dir = make_trainer(tmp_path / "base", source, "cut", max_new_tokens=1)
    (warning,) = events(run_dir, "warning")
    assert "max_new_tokens=1 cuts off 5 of 5 reference answers" in warning["message"]
    _, run_dir = make_trainer(tmp_path / "base", source, "whole", max_new_tokens=10)
    assert events(run_dir, "warning") == []
