"""CORE-style in-context evaluation (DCLM's CORE metric): load a bundle, render few-shot prompts, score by loss.

A bundle is nanochat's layout: `core.yaml` (`icl_tasks`: label, icl_task_type, dataset_uri, num_fewshot,
continuation_delimiter), `eval_data/<dataset_uri>` (JSONL, one example a line) and optionally
`eval_meta_data.csv` (`Eval Task`, `Random baseline` in percent). Three task types:

- multiple_choice: `query`, `choices`, `gold`. The options share the prompt (a common token prefix); the
  option whose continuation has the lowest mean loss is the answer.
- schema: `context_options`, `continuation`, `gold`. The contexts differ and share the continuation (a
  common token suffix); the context under which the continuation has the lowest mean loss is the answer.
- language_modeling: `context`, `continuation`. Right when greedy decoding reproduces the continuation.

Accuracy is centred against the random baseline: (acc − b) / (1 − b), b a fraction.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F

from engine.errors import EngineError, short_repr
from engine.safe_yaml import load_yaml_file

TASK_TYPES = ("multiple_choice", "schema", "language_modeling")
FEWSHOT_SEED = 1234  # few-shot examples of item i are drawn with Random(FEWSHOT_SEED + i), as nanochat does
SUBSAMPLE_SEED = 1337  # the shuffle that max_per_task cuts, so a subsample is the same on every run
FEWSHOT_SEP = "\n\n"

# templates of one shot: the few-shot examples use the gold option, the item itself each option in turn
TEMPLATES = {
    "multiple_choice": "{query}{delim}{answer}",
    "schema": "{context}{delim}{continuation}",
    "language_modeling": "{context}{delim}{continuation}",
}


@dataclass
class CoreTask:
    label: str
    task_type: str
    num_fewshot: int
    delimiter: str
    data: list[dict[str, Any]]
    baseline: float  # random-guess accuracy, a fraction in [0, 1)
    source: str = ""  # the data file, for messages
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- the bundle


def _check_item(item: Any, task_type: str, where: str) -> dict[str, Any]:
    def bad(what: str) -> EngineError:
        return EngineError(f"{where}: {what}: fix or drop this line")

    if not isinstance(item, dict):
        raise bad(f"a JSON {type(item).__name__}, not an object")
    need = {"multiple_choice": ("query", "choices", "gold"), "schema": ("context_options", "continuation", "gold"),
            "language_modeling": ("context", "continuation")}[task_type]
    missing = [k for k in need if k not in item]
    if missing:
        raise bad(f"missing {', '.join(missing)} (a {task_type} example has {', '.join(need)})")
    options = item.get("choices" if task_type == "multiple_choice" else "context_options")
    if task_type != "language_modeling":
        if not (isinstance(options, list) and len(options) >= 2 and all(isinstance(o, str) for o in options)):
            raise bad(f"options {short_repr(options)} are not a list of at least 2 strings")
        gold = item["gold"]
        if not (isinstance(gold, int) and not isinstance(gold, bool) and 0 <= gold < len(options)):
            raise bad(f"gold={short_repr(gold)} is not an index into its {len(options)} options")
    for k in ("query", "continuation", "context"):
        if k in need and not isinstance(item[k], str):
            raise bad(f"{k} is {short_repr(item[k])}, not a string")
    if task_type == "language_modeling" and not item["continuation"].strip():
        raise bad("empty continuation")
    return item


def read_jsonl(path: Path, task_type: str) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EngineError(f"{path}: data file missing: put the task's JSONL there or fix its dataset_uri") from None
    except UnicodeDecodeError:
        raise EngineError(f"{path}: not UTF-8 text: re-save it as UTF-8 JSONL") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise EngineError(f"{path}:{n}: not JSON ({e.msg}): fix or drop this line") from None
        out.append(_check_item(item, task_type, f"{path}:{n}"))
    if not out:
        raise EngineError(f"{path}: no examples: fill it or drop the task from the yaml")
    return out


def read_baselines(path: Path) -> dict[str, float]:
    """`Eval Task` -> random baseline as a fraction (the csv has percents)."""
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    out = {}
    for n, row in enumerate(rows, 2):
        label, value = row.get("Eval Task"), row.get("Random baseline")
        try:
            out[str(label)] = float(value) / 100.0
        except (TypeError, ValueError):
            raise EngineError(f"{path}:{n}: Random baseline {short_repr(value)} is not a number (a percent): "
                              "fix that row") from None
    return out


def default_baseline(task_type: str, data: list[dict[str, Any]]) -> float:
    """Random-guess accuracy where the csv has none: mean 1/options; 0 for language modelling."""
    if task_type == "language_modeling":
        return 0.0
    key = "choices" if task_type == "multiple_choice" else "context_options"
    return sum(1.0 / len(item[key]) for item in data) / len(data)


def load_bundle(path: str | Path) -> list[CoreTask]:
    """The tasks of a bundle dir (or of its core.yaml given directly), every example checked."""
    path = Path(path).expanduser()
    yaml_path = path / "core.yaml" if path.is_dir() else path
    if not yaml_path.is_file():
        raise EngineError(f"{path}: no CORE bundle there (core.yaml not found): pass a bundle dir with core.yaml "
                          "and eval_data/, or drop --bundle to use the shipped one")
    root = yaml_path.parent
    raw = load_yaml_file(yaml_path)
    tasks_raw = raw.get("icl_tasks") if isinstance(raw, dict) else None
    if not isinstance(tasks_raw, list) or not tasks_raw:
        raise EngineError(f"{yaml_path}: no icl_tasks list: add `icl_tasks:` with one entry per task")
    baselines = read_baselines(root / "eval_meta_data.csv")
    tasks = []
    for i, t in enumerate(tasks_raw):
        where = f"{yaml_path}: icl_tasks[{i}]"
        if not isinstance(t, dict):
            raise EngineError(f"{where}: not a mapping: give label, icl_task_type, dataset_uri, num_fewshot")
        label, task_type, uri = t.get("label"), t.get("icl_task_type"), t.get("dataset_uri")
        if not isinstance(label, str) or not label:
            raise EngineError(f"{where}: label missing: name the task")
        if task_type not in TASK_TYPES:
            raise EngineError(f"{where} ({label}): icl_task_type {short_repr(task_type)} unknown: use one of "
                              f"{', '.join(TASK_TYPES)}")
        if not isinstance(uri, str) or not uri:
            raise EngineError(f"{where} ({label}): dataset_uri missing: name its JSONL file under eval_data/")
        shots = t.get("num_fewshot", 0)
        shots = shots[0] if isinstance(shots, list) and shots else shots
        if not isinstance(shots, int) or isinstance(shots, bool) or shots < 0:
            raise EngineError(f"{where} ({label}): num_fewshot {short_repr(shots)} is not a count: use e.g. [3]")
        delim = t.get("continuation_delimiter", " ")
        if not isinstance(delim, str):
            raise EngineError(f"{where} ({label}): continuation_delimiter must be a string")
        data_path = root / "eval_data" / uri
        data = read_jsonl(data_path, task_type)
        if shots >= len(data):
            raise EngineError(f"{where} ({label}): num_fewshot={shots} needs more than {len(data)} examples: "
                              "lower it or add examples")
        baseline = baselines.get(label, default_baseline(task_type, data))
        if not 0 <= baseline < 1:
            raise EngineError(f"{root / 'eval_meta_data.csv'}: {label}: random baseline {baseline * 100}% must be "
                              "in [0, 100)")
        tasks.append(CoreTask(label, task_type, shots, delim, data, baseline, str(data_path)))
    return tasks


def shipped_bundle() -> Path:
    """The small bundle in the package (engine/data/core_bundle), built from the offline tasks."""
    return Path(__file__).parent / "data" / "core_bundle"


# ---------------------------------------------------------------------------------------------- prompts


def fewshot_examples(data: list[dict[str, Any]], idx: int, num_fewshot: int) -> list[dict[str, Any]]:
    if num_fewshot <= 0:
        return []
    rng = random.Random(FEWSHOT_SEED + idx)
    return [data[i] for i in rng.sample([i for i in range(len(data)) if i != idx], num_fewshot)]


def _shot(task_type: str, example: dict[str, Any], delim: str) -> str:
    """One solved few-shot example, from its template."""
    if task_type == "multiple_choice":
        return TEMPLATES[task_type].format(query=example["query"], delim=delim,
                                           answer=example["choices"][example["gold"]])
    if task_type == "schema":
        return TEMPLATES[task_type].format(context=example["context_options"][example["gold"]], delim=delim,
                                           continuation=example["continuation"])
    return TEMPLATES[task_type].format(context=example["context"].strip(), delim=delim,
                                       continuation=example["continuation"])


def render_prompts(task_type: str, item: dict[str, Any], delim: str, shots: list[dict[str, Any]]) -> list[str]:
    """The texts to score: one per option (MC, schema); for LM the prompt without and with the continuation."""
    head = "".join(_shot(task_type, s, delim) + FEWSHOT_SEP for s in shots)
    if task_type == "multiple_choice":
        return [head + TEMPLATES[task_type].format(query=item["query"], delim=delim, answer=c)
                for c in item["choices"]]
    if task_type == "schema":
        return [head + TEMPLATES[task_type].format(context=c, delim=delim, continuation=item["continuation"])
                for c in item["context_options"]]
    with_cont = head + TEMPLATES[task_type].format(context=item["context"].strip(), delim=delim,
                                                   continuation=item["continuation"])
    # the prompt alone loses its trailing delimiter whitespace, which BPE would glue to the continuation
    without = (head + item["context"].strip() + delim).strip()
    return [without, with_cont]


# ---------------------------------------------------------------------------------------------- batching


def common_length(seqs: list[list[int]], direction: str = "left") -> int:
    """Length of the common prefix (left) or suffix (right) of token sequences."""
    n = min(len(s) for s in seqs)
    for i in range(n):
        j = i if direction == "left" else -1 - i
        if any(s[j] != seqs[0][j] for s in seqs[1:]):
            return i
    return n


def spans(task_type: str, tokens: list[list[int]]) -> tuple[list[list[int]], list[int], list[int]]:
    """(sequences to run, start, end): the positions [start, end) of each sequence that are scored.

    MC: options share a prefix, each scores from where they diverge. Schema: contexts share the
    continuation (a suffix), which is scored in each. LM: only the prompt with the continuation runs."""
    if task_type == "multiple_choice":
        start = common_length(tokens, "left")
        return tokens, [start] * len(tokens), [len(t) for t in tokens]
    if task_type == "schema":
        suffix = common_length(tokens, "right")
        return tokens, [len(t) - suffix for t in tokens], [len(t) for t in tokens]
    without, with_cont = tokens
    start = common_length([without, with_cont], "left")
    return [with_cont], [start], [len(with_cont)]


def crop(tokens: list[list[int]], starts: list[int], ends: list[int], max_len: int):
    """Keep the last max_len tokens of each sequence, shifting its span (at least one token of context stays)."""
    out_t, out_s, out_e = [], [], []
    for t, s, e in zip(tokens, starts, ends, strict=True):
        cut = max(0, len(t) - max_len)
        out_t.append(t[cut:])
        out_s.append(max(1, s - cut))
        out_e.append(e - cut)
    return out_t, out_s, out_e


def stack(tokens: list[list[int]], pad: int) -> torch.Tensor:
    width = max(len(t) for t in tokens)
    out = torch.full((len(tokens), width), pad, dtype=torch.long)
    for i, t in enumerate(tokens):
        out[i, :len(t)] = torch.tensor(t, dtype=torch.long)
    return out


# ---------------------------------------------------------------------------------------------- scoring


@torch.no_grad()
def score_example(model: torch.nn.Module, tokenizer: Any, task: CoreTask, idx: int, device: torch.device,
                  max_len: int | None = None) -> bool:
    """Whether the model gets example `idx` of `task` right: all its options in one forward pass."""
    item = task.data[idx]
    prompts = render_prompts(task.task_type, item, task.delimiter, fewshot_examples(task.data, idx, task.num_fewshot))
    tokens = tokenizer.encode(prompts, prepend=tokenizer.get_bos_token_id())
    tokens, starts, ends = spans(task.task_type, tokens)
    if max_len is not None:
        tokens, starts, ends = crop(tokens, starts, ends, max_len)
    ids = stack(tokens, tokenizer.get_bos_token_id()).to(device)
    logits = model(ids)
    # position p predicts token p+1: the span [s, e) is predicted by positions [s-1, e-1)
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2).float(), ids[:, 1:], reduction="none")
    if task.task_type == "language_modeling":
        s, e = starts[0], ends[0]
        return bool((logits[0, s - 1:e - 1].argmax(-1) == ids[0, s:e]).all())
    means = [losses[i, s - 1:e - 1].mean().item() for i, (s, e) in enumerate(zip(starts, ends, strict=True))]
    return means.index(min(means)) == item["gold"]


def subsample(task: CoreTask, max_per_task: int) -> CoreTask:
    """The same max_per_task examples on every run (a seeded shuffle, then a cut); all when <= 0."""
    if max_per_task <= 0 or max_per_task >= len(task.data):
        return task
    order = list(range(len(task.data)))
    random.Random(SUBSAMPLE_SEED).shuffle(order)
    keep = sorted(order[:max_per_task])
    return CoreTask(task.label, task.task_type, min(task.num_fewshot, max(0, len(keep) - 1)),
                    task.delimiter, [task.data[i] for i in keep], task.baseline, task.source)


def evaluate_task(model: torch.nn.Module, tokenizer: Any, task: CoreTask, device: torch.device,
                  max_len: int | None = None) -> tuple[float, int]:
    """(accuracy, examples): the ranks take strided examples, the counts are summed over all ranks."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    counts = torch.zeros(2, dtype=torch.float64, device=device)
    for idx in range(rank, len(task.data), world):
        counts[0] += float(score_example(model, tokenizer, task, idx, device, max_len))
        counts[1] += 1
    if world > 1:
        dist.all_reduce(counts)
    n = int(counts[1].item())
    return (counts[0].item() / n if n else 0.0), n


def centered(accuracy: float, baseline: float) -> float:
    return (accuracy - baseline) / (1.0 - baseline)
