"""Puzzle 06 · Evaluator (CORE_Evaluator)

Goal: score a base model the way the CORE metric does, by loss, without generating text. Render each
example with its few-shot examples; for multiple choice the options share the prompt (a common prefix)
and each option's continuation is scored; for schema tasks the contexts differ and share the
continuation (a common suffix), scored under each context; for language modelling the model must
reproduce the continuation greedily. All options of one example go through the model in one batch; the
option with the lowest mean loss is the answer. Accuracy is centred on the random baseline and the
suite's score is the mean centred accuracy. Verified against the engine (engine/core_eval.py,
engine/base_eval.py) on its shipped bundle (engine/data/core_bundle).

    python -m puzzles.06_evaluator            run your evaluator on a small example
    python -m puzzles.06_evaluator --verify   compare it with the engine, check by check
    python -m puzzles.06_evaluator --peek     read the engine's code for this puzzle

Example items: multiple_choice {query, choices, gold}; schema {context_options, continuation, gold};
language_modeling {context, continuation}.
"""

import sys


class CoreEvaluator:
    @staticmethod
    def fewshot(data: list[dict], idx: int, num_fewshot: int) -> list[dict]:
        """The few-shot examples of item idx: random.Random(1234 + idx).sample of num_fewshot indices from
        all indices except idx (in order); [] when num_fewshot is 0."""
        raise NotImplementedError("not implemented yet: CoreEvaluator.fewshot")

    @staticmethod
    def render_prompts(task_type: str, item: dict, delimiter: str, shots: list[dict]) -> list[str]:
        """The texts to score. Head: each shot rendered solved, followed by "\\n\\n":
        MC shot "{query}{delimiter}{gold choice}"; schema shot "{gold context}{delimiter}{continuation}";
        LM shot "{context.strip()}{delimiter}{continuation}".
        MC: head + "{query}{delimiter}{choice}" per choice. Schema: head + "{context}{delimiter}{continuation}"
        per context. LM: two texts: (head + context.strip() + delimiter).strip() and
        head + "{context.strip()}{delimiter}{continuation}"."""
        raise NotImplementedError("not implemented yet: CoreEvaluator.render_prompts")

    @staticmethod
    def batch_spans(task_type: str, tokens: list[list[int]]) -> tuple[list[list[int]], list[int], list[int]]:
        """(sequences to run, start, end): tokens [start, end) of each sequence are scored.
        MC: every sequence, start = length of the common prefix of all, end = its length. Schema: every
        sequence, start = its length minus the common suffix of all, end = its length. LM (tokens =
        [without, with continuation]): only the second, start = their common prefix length."""
        raise NotImplementedError("not implemented yet: CoreEvaluator.batch_spans")

    @staticmethod
    def is_correct(model, tokenizer, task_type: str, item: dict, delimiter: str, shots: list[dict]) -> bool:
        """Render, tokenize each text with tokenizer.encode(texts, prepend=bos), take the spans, right-pad
        with bos into one batch and run the model once (logits [B, T, V]). Position p predicts token p+1, so
        span [s, e) is scored by positions [s-1, e-1). MC and schema: the option with the lowest mean
        cross-entropy over its span is the answer (first of equals); right when it is item["gold"]. LM:
        right when the argmax at every scored position is the continuation's token."""
        raise NotImplementedError("not implemented yet: CoreEvaluator.is_correct")

    @staticmethod
    def centered(accuracy: float, baseline: float) -> float:
        """(accuracy - baseline) / (1 - baseline): 0 for guessing, 1 for perfect."""
        raise NotImplementedError("not implemented yet: CoreEvaluator.centered")

    @staticmethod
    def core_score(results: list[tuple[float, float]]) -> float:
        """The suite's score from (accuracy, baseline) per task: the mean centred accuracy."""
        raise NotImplementedError("not implemented yet: CoreEvaluator.core_score")


if __name__ == "__main__":
    from puzzles.harness import main

    sys.exit(main(6))
