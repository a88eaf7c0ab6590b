"""Puzzle 06 checks: few-shot picks, prompts, prefix/suffix spans, per-example answers, centring, the score."""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Iterator

import torch

from puzzles import compare
from puzzles.checks import fixtures
from puzzles.oracle import Oracle, Skip

PEEK = {
    "engine": ["engine.core_eval:fewshot_examples", "engine.core_eval:TEMPLATES", "engine.core_eval:render_prompts",
               "engine.core_eval:common_length", "engine.core_eval:spans", "engine.core_eval:score_example",
               "engine.core_eval:centered", "engine.base_eval:core_results"],
    "nanochat": ["nanochat.core_eval:render_prompts_mc", "nanochat.core_eval:render_prompts_schema",
                 "nanochat.core_eval:batch_sequences_mc", "nanochat.core_eval:batch_sequences_schema",
                 "nanochat.core_eval:evaluate_example"],
}
PER_TASK = 8


@functools.cache
def bundle():
    from engine.core_eval import load_bundle, shipped_bundle, subsample

    return [subsample(t, PER_TASK) for t in load_bundle(shipped_bundle())]


def _nanochat_core(oracle: Oracle):
    try:
        return oracle.nanochat("core_eval")
    except ImportError as e:  # its jinja2 templates, say
        raise Skip(f"stock nanochat's core_eval does not import here ({e})") from None


def _oracle_render(oracle: Oracle):
    """render_prompts(task_type, item, delimiter, shots) of the oracle."""
    if oracle.is_engine:
        from engine.core_eval import render_prompts

        return render_prompts
    core = _nanochat_core(oracle)
    by_type = {"multiple_choice": core.render_prompts_mc, "schema": core.render_prompts_schema,
               "language_modeling": core.render_prompts_lm}
    return lambda task_type, item, delim, shots: by_type[task_type](item, delim, shots)


def _oracle_spans(oracle: Oracle, tok):
    """spans(task_type, tokens, texts) -> (sequences, starts, ends) of the oracle (nanochat's tokenizes the texts)."""
    if oracle.is_engine:
        from engine.core_eval import spans

        return lambda task_type, tokens, texts: spans(task_type, tokens)
    core = _nanochat_core(oracle)
    by_type = {"multiple_choice": core.batch_sequences_mc, "schema": core.batch_sequences_schema,
               "language_modeling": core.batch_sequences_lm}
    return lambda task_type, tokens, texts: by_type[task_type](tok, texts)


def _oracle_score(oracle: Oracle):
    """score(model, tok, task, idx) -> right or wrong, by the oracle."""
    if oracle.is_engine:
        from engine.core_eval import score_example

        return lambda model, tok, task, idx, device: score_example(model, tok, task, idx, device)
    core = _nanochat_core(oracle)
    return lambda model, tok, task, idx, device: bool(core.evaluate_example(
        idx, model, tok, task.data, device, {"task_type": task.task_type, "num_fewshot": task.num_fewshot,
                                             "continuation_delimiter": task.delimiter}))


def _model():
    return fixtures.gpt(fixtures.tokenizer().get_vocab_size(), seed=12, sequence_len=512)


def checks(impl, oracle: Oracle) -> Iterator[tuple[str, object]]:
    ev = impl.CoreEvaluator
    tok = fixtures.tokenizer()

    def fewshot():
        oracle.require_engine("few-shot picker (it is inline in core_eval.evaluate_example)")
        from engine.core_eval import fewshot_examples

        for task in bundle():
            for idx in range(len(task.data)):
                for n in (0, 1, 3):
                    if ev.fewshot(task.data, idx, n) != fewshot_examples(task.data, idx, n):
                        return f"{task.label} item {idx}: the {n} few-shot examples differ"
        return None

    def prompts():
        from engine.core_eval import fewshot_examples

        render_prompts = _oracle_render(oracle)
        for task in bundle():
            for idx, item in enumerate(task.data[:4]):
                shots = fewshot_examples(task.data, idx, task.num_fewshot)
                for delim in (task.delimiter, " => "):
                    problem = compare.sequences(f"{task.label} ({task.task_type}) item {idx}, delimiter {delim!r}",
                                                ev.render_prompts(task.task_type, item, delim, shots),
                                                render_prompts(task.task_type, item, delim, shots))
                    if problem:
                        return problem
        return None

    def spans():
        from engine.core_eval import fewshot_examples, render_prompts

        oracle_spans = _oracle_spans(oracle, tok)
        for task in bundle():
            for idx, item in enumerate(task.data):
                texts = render_prompts(task.task_type, item, task.delimiter,
                                       fewshot_examples(task.data, idx, task.num_fewshot))
                tokens = tok.encode(texts, prepend=tok.get_bos_token_id())
                got = ev.batch_spans(task.task_type, [list(t) for t in tokens])
                want = oracle_spans(task.task_type, [list(t) for t in tokens], texts)
                for name, g, w in zip(("sequences", "starts", "ends"), got, want, strict=True):
                    problem = compare.sequences(f"{task.label} item {idx}: {name}", list(g), list(w))
                    if problem:
                        return problem
        return None

    def answers():
        from engine.core_eval import fewshot_examples

        score_example = _oracle_score(oracle)
        model = _model()
        for task in bundle():
            for idx, item in enumerate(task.data):
                shots = fewshot_examples(task.data, idx, task.num_fewshot)
                with torch.no_grad():
                    got = ev.is_correct(model, tok, task.task_type, item, task.delimiter, shots)
                want = score_example(model, tok, task, idx, torch.device("cpu"))
                if bool(got) != want:
                    return f"{task.label} ({task.task_type}) item {idx}: you say {'right' if got else 'wrong'}, " \
                           f"the engine says {'right' if want else 'wrong'}"
        return None

    def centring():
        oracle.require_engine("centring (it lives in scripts/base_eval.py)")
        from engine.core_eval import centered

        for acc, base in ((0.25, 0.25), (1.0, 0.25), (0.1, 0.5), (0.6, 0.0), (0.0, 1 / 3)):
            problem = compare.scalars(f"centered({acc}, {base})", ev.centered(acc, base), centered(acc, base),
                                      atol=1e-12)
            if problem:
                return problem
        return None

    def suite():
        oracle.require_engine("CORE score (it lives in scripts/base_eval.py)")
        from engine.base_eval import core_results

        model = _model()
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            rows = core_results(model, tok, bundle(), torch.device("cpu"), PER_TASK, None)
        want = sum(r["centered"] for r in rows) / len(rows)
        got = ev.core_score([(r["value"], r["baseline"]) for r in rows])
        return compare.scalars("core_score of the bundle's results", got, want, atol=1e-12)

    yield "few-shot examples", fewshot
    yield "prompts (MC, schema, LM)", prompts
    yield "common prefix/suffix spans", spans
    yield "right or wrong, per example (one batch per example)", answers
    yield "centred accuracy", centring
    yield "the suite's score", suite


def example(impl) -> str:
    ev = impl.CoreEvaluator
    tok = fixtures.tokenizer()
    model = _model()
    lines = []
    results = []
    for task in bundle():
        right = 0
        for idx, item in enumerate(task.data):
            with torch.no_grad():
                right += bool(ev.is_correct(model, tok, task.task_type, item, task.delimiter,
                                            ev.fewshot(task.data, idx, task.num_fewshot)))
        acc = right / len(task.data)
        results.append((acc, task.baseline))
        centred = ev.centered(acc, task.baseline)
        lines.append(f"{task.label:<20} {task.task_type:<18} acc {acc:.3f} centred {centred:+.3f}")
    lines.append(f"score (an untrained model, {PER_TASK} items a task): {ev.core_score(results):+.4f}")
    return "\n".join(lines)
