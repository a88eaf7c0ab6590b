"""chat_eval on scripted "models" whose answers are known: generative accuracy and pass@k (tool calls run),
categorical accuracy by the offered letters' logits, the results file, and one-line errors."""

import json

import pytest
import torch
import torch.nn as nn

from engine.chat_eval import evaluate_task, main, write_results
from engine.gpt import GPTConfig
from engine.tasks import build_task
from engine.tokenizer import Tokenizer

TEXT = "How many apples? 12 + 7 = 19. #### 19 Which of these is a color? A. red B. blue C. D. letters count " * 30


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train_from_iterator([TEXT], 300)


class ScriptedChat(nn.Module):
    """Decoding: row b of a prompt writes scripts[prompt][b] token by token (forced tool output included,
    as the Engine feeds it back). Full forward (no cache): the last prompt position of each row puts
    logit 5 on letters[prompt] and 9 on a non-letter token, which letter scoring must ignore."""

    def __init__(self, vocab_size: int, bos: int, scripts: dict, letters: dict, distractor: int):
        super().__init__()
        self.config = GPTConfig(sequence_len=512, vocab_size=vocab_size, n_layer=1, n_head=1, n_kv_head=1, n_embd=8)
        self.rotary_len = 5120
        self.anchor = nn.Parameter(torch.zeros(1))
        self.bos, self.scripts, self.letters, self.distractor = bos, scripts, letters, distractor
        self.prompt: tuple = ()

    def forward(self, idx, targets=None, kv_cache=None):
        B, T = idx.shape
        logits = torch.zeros(B, T, self.config.vocab_size)
        if kv_cache is None:
            for b, row in enumerate(idx.tolist()):
                while row[-1] == self.bos:
                    row.pop()
                logits[b, len(row) - 1, self.letters[tuple(row)]] = 5.0
                logits[b, len(row) - 1, self.distractor] = 9.0
            return logits
        pos = kv_cache.get_pos()
        if pos == 0:
            self.prompt, self.start = tuple(idx[0].tolist()), T
        kv_cache.advance(T)
        for b in range(B):
            script = self.scripts[self.prompt][b]
            logits[b, -1, script[min(pos + T - self.start, len(script) - 1)]] = 20.0
        return logits


def reply_tokens(tok: Tokenizer, code: str, result: str, final: str) -> list[int]:
    sp = tok.encode_special
    return [sp("<|python_start|>"), *tok.encode(code), sp("<|python_end|>"), sp("<|output_start|>"),
            *tok.encode(result), sp("<|output_end|>"), *tok.encode(f" so #### {final}"), sp("<|assistant_end|>")]


def calculator(code: str) -> str:
    return str(eval(code, {"__builtins__": {}}))  # noqa: S307 - the scripts' own expressions


def test_generative_accuracy_and_pass_at_k(tok):
    task = build_task("arithmetic", "eval", 6)
    scripts = {}
    for i in range(len(task)):
        ex = task[i]
        call = next(p["text"] for p in ex["messages"][-1]["content"] if p["type"] == "python")
        right = reply_tokens(tok, call, calculator(call), ex["answer"])
        wrong = reply_tokens(tok, call, calculator(call), "-1")
        # row 0 is right on even examples only; row 1 (a second sample) is always right
        scripts[tuple(tok.render_for_completion(ex))] = [right if i % 2 == 0 else wrong, right]
    model = ScriptedChat(tok.get_vocab_size(), tok.get_bos_token_id(), scripts, {}, 0)
    one = evaluate_task(model, tok, task, num_samples=1, tool=calculator, max_new_tokens=60)
    assert one == {"task": "arithmetic", "metric": "pass@1", "value": 0.5, "n": 6, "baseline": 0.0,
                   "centered": 0.5}
    two = evaluate_task(model, tok, task, num_samples=2, temperature=1.0, tool=calculator, max_new_tokens=60)
    assert two["metric"] == "pass@2" and two["value"] == 1.0
    # ranks split the examples: rank 1 of 2 scores examples 1, 3, 5 (all wrong in row 0)
    assert evaluate_task(model, tok, task, rank=1, world_size=2, tool=calculator, max_new_tokens=60)["value"] == 0.0


def test_categorical_accuracy_uses_only_the_offered_letters(tok):
    task = build_task("multiple_choice", "eval", 8)
    letters = {}
    for i in range(len(task)):
        ex = task[i]
        pick = ex["answer"] if i % 4 else ("A" if ex["answer"] != "A" else "B")  # wrong on examples 0 and 4
        letters[tuple(tok.render_for_completion(ex))] = tok.encode(pick)[0]
    model = ScriptedChat(tok.get_vocab_size(), tok.get_bos_token_id(), {}, letters, tok.encode("Z")[0])
    for batch_size in (1, 3, 8):  # padding a batch never changes an answer
        result = evaluate_task(model, tok, task, batch_size=batch_size)
        assert result == {"task": "multiple_choice", "metric": "accuracy", "value": 0.75, "n": 8, "baseline": 0.25,
                          "centered": pytest.approx(2 / 3)}


def test_results_file(tmp_path):
    results = [{"task": "a", "metric": "pass@1", "value": 0.5, "n": 2, "baseline": 0.0, "centered": 0.5},
               {"task": "b", "metric": "accuracy", "value": 1.0, "n": 4, "baseline": 0.25, "centered": 1.0}]
    path = write_results(tmp_path, 7, results)
    doc = json.loads(path.read_text())
    assert path.name == "eval_chat_000007.json" and doc["score"] == 0.75 and doc["results"] == results
    assert doc["checkpoint"].endswith("model_000007.pt") and doc["suite"] == "chat" and doc["step"] == 7


def test_missing_checkpoint_and_bad_flags_are_one_line_errors(tmp_path, capsys):
    assert main(["--base-dir", str(tmp_path), "--device-type", "cpu"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"engine.chat_eval: error: no sft checkpoint in {tmp_path}/chatrl_checkpoints or "
                   f"{tmp_path}/chatsft_checkpoints: run SFT first with nanochat-cli train --prefab cpu-tiny-sft"]
    assert main(["--base-dir", str(tmp_path), "--tasks", "identity"]) == 2
    assert "no right answers" in capsys.readouterr().err


def test_windows_poll_between_and_keep_the_result(tok):
    task = build_task("multiple_choice", "eval", 8)
    letters = {tuple(tok.render_for_completion(task[i])): tok.encode(task[i]["answer"])[0] for i in range(8)}
    model = ScriptedChat(tok.get_vocab_size(), tok.get_bos_token_id(), {}, letters, tok.encode("Z")[0])
    polls = []
    whole = evaluate_task(model, tok, task)
    assert evaluate_task(model, tok, task, window=3, between=lambda: polls.append(1)) == whole
    assert len(polls) == 2  # after windows [0,3) and [3,6); none after the last
    # a rank scores the same examples whatever the windows
    for r in (0, 1):
        assert evaluate_task(model, tok, task, rank=r, world_size=2, window=3) == \
            evaluate_task(model, tok, task, rank=r, world_size=2)


def chat_evaluator(tmp_path):
    from engine.chat_eval import ChatEvalConfig, ChatEvaluator
    from engine.common import DistInfo
    from engine.telemetry import TelemetryWriter
    from tests.helpers.ckpt_helpers import save_ours, tiny_model

    torch.set_num_threads(1)
    tok = Tokenizer.train_from_iterator([TEXT], 300)
    (tmp_path / "tok").mkdir()
    tok.save(tmp_path / "tok")
    ckpt = save_ours(tmp_path / "base", "tiny", 3, tiny_model(tok.get_vocab_size()), tok, None)
    cfg = ChatEvalConfig(base_dir=str(tmp_path / "base"), device_type="cpu", source=str(ckpt),
                         tasks="multiple_choice,arithmetic", num_examples=4, max_new_tokens=4, poll_every=2)
    run_dir = tmp_path / "base" / "runs" / cfg.run
    run_dir.mkdir(parents=True)
    info = DistInfo(ddp=False, rank=0, local_rank=0, world_size=1, device=torch.device("cpu"))
    ev = ChatEvaluator(cfg, info, TelemetryWriter(run_dir / "telemetry.jsonl", run=cfg.run), run_dir)
    ev.setup()
    return ev, ckpt, run_dir


def telemetry(run_dir, kind):
    rows = [json.loads(x) for x in (run_dir / "telemetry.jsonl").read_text().splitlines()]
    return [r for r in rows if r["event"] == kind]


def test_stop_request_ends_the_eval_without_a_results_file(tmp_path):
    from engine.control import send_request

    ev, ckpt, run_dir = chat_evaluator(tmp_path)
    calls = []
    original = ev.poll

    def poll():  # the stop arrives while the first task is being scored, after its first window
        calls.append(1)
        if len(calls) == 2:
            send_request(run_dir, "stop")
        original()

    ev.poll = poll
    assert ev.train() == "stopped"
    assert len(calls) == 2 and ev.done == 0
    (ack,) = telemetry(run_dir, "control_ack")
    assert ack["ok"] and ack["kind"] == "stop" and "0 of 2 tasks" in ack["message"]
    assert telemetry(run_dir, "eval_result") == [] and not list(ckpt.glob("eval_chat_*.json"))


def test_save_now_and_patch_are_answered_and_the_eval_goes_on(tmp_path):
    from engine.control import send_request

    ev, ckpt, run_dir = chat_evaluator(tmp_path)
    send_request(run_dir, "save_now")
    send_request(run_dir, "patch", {"num_examples": 2})
    assert ev.train() == "finished"
    acks = telemetry(run_dir, "control_ack")
    assert [(a["kind"], a["ok"]) for a in acks] == [("save_now", False), ("patch", False)]
    assert "nothing to save" in acks[0]["message"] and "no hot settings" in acks[1]["message"]
    assert len(telemetry(run_dir, "eval_result")) == 2 and (ckpt / "eval_chat_000003.json").is_file()
