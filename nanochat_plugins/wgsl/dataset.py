"""The NL -> WGSL dataset: pairs generated from the template families, every shader validated by naga and
run against its numpy reference, split into train / val / test by family (a test family is never seen in
training, so the test split measures generalisation, not recall).

Stored as JSONL, one record a line (`Record`), in `train.jsonl`, `val.jsonl`, `test.jsonl`, with a README
that says how it was made. `generate` is deterministic: the same arguments give byte-identical files.
The dataset that ships with the plugin (`data/`) is made by `nanochat-cli wgsl dataset` with the defaults.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nanochat_plugins.wgsl import templates
from nanochat_plugins.wgsl.errors import WgslError

BUNDLED = Path(__file__).resolve().parent / "data"
SPLITS = ("train", "val", "test")
# Held out: each has relatives in training (gamma ~ brightness, lerp ~ axpy, row_min ~ row_max, matvec ~
# matmul, gaussian ~ box blur ...), so a model that learned the pieces can write it.
VAL_FAMILIES = ("chromatic.brightness", "elementwise.sigmoid", "reduction.row_l2", "matrix.outer", "image.flip")
TEST_FAMILIES = ("chromatic.gamma", "elementwise.leaky_relu", "elementwise.lerp", "reduction.row_min",
                 "reduction.workgroup_dot", "matrix.matvec", "image.gaussian_blur")
PER_FAMILY = 10
SEED = 0
MAX_TRIES = 40  # draws per wanted pair before a family is declared out of distinct pairs


@dataclass(frozen=True)
class Record:
    id: str  # "<family>-<n>", e.g. chromatic.mix-003
    family: str
    category: str
    split: str
    seed: int  # templates.sample(family, seed) rebuilds the pair, templates.case_for(...) its test
    params: dict[str, Any]
    prompt: str
    shader: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=False)


@dataclass
class Report:
    records: list[Record]
    checked: bool
    validate_s: list[float] = field(default_factory=list)
    run_s: list[float] = field(default_factory=list)
    adapter: str = ""


def split_of(family: str, val: Iterable[str], test: Iterable[str]) -> str:
    return "test" if family in set(test) else "val" if family in set(val) else "train"


def check_families(val: Iterable[str], test: Iterable[str]) -> None:
    val, test = list(val), list(test)
    for name in val + test:
        templates.family(name)  # unknown -> one-line error
    both = sorted(set(val) & set(test))
    if both:
        raise WgslError(f"dataset: {both[0]} is in both val_families and test_families: keep each family in one split")


def generate(per_family: int = PER_FAMILY, seed: int = SEED, val: Iterable[str] = VAL_FAMILIES,
             test: Iterable[str] = TEST_FAMILIES, families: Iterable[str] | None = None, check: bool = True,
             progress: Callable[[str], None] | None = None) -> Report:
    """`per_family` distinct pairs (times the family's `weight`) from every family (or the `families` named).
    With `check`, every shader is
    validated and run on the device and must match its numpy reference, else a WgslError names it."""
    if per_family < 1:
        raise WgslError(f"dataset: per_family={per_family}: must be at least 1")
    val, test = list(val), list(test)
    check_families(val, test)
    names = list(families) if families is not None else list(templates.FAMILIES)
    for name in names:
        templates.family(name)
    report = Report([], check)
    if check:
        from nanochat_plugins.wgsl import gpu

        info = gpu.adapter_info()
        report.adapter = f"{info.device} ({info.backend}, {info.description})"
    for f_index, name in enumerate(names):
        seen: set[tuple[str, str]] = set()
        tries = 0
        wanted = per_family * templates.family(name).weight
        while len(seen) < wanted:
            if tries >= MAX_TRIES * wanted:
                raise WgslError(f"dataset: family {name} gave only {len(seen)} distinct pairs in {tries} draws: "
                                f"lower per_family to {len(seen) // templates.family(name).weight} or less")
            s = templates.sample(name, seed * 1_000_003 + f_index * 10_007 + tries)
            tries += 1
            if (s.prompt, s.shader) in seen:
                continue
            seen.add((s.prompt, s.shader))
            rec = Record(f"{name}-{len(seen) - 1:03d}", name, s.category, split_of(name, val, test), s.seed,
                         s.params, s.prompt, s.shader)
            if check:
                _check(rec, report)
            report.records.append(rec)
        if progress:
            progress(f"{name}: {wanted} pairs")
    return report


def _check(rec: Record, report: Report) -> None:
    from nanochat_plugins.wgsl.runner import run_case
    from nanochat_plugins.wgsl.validate import validate_source

    v = validate_source(rec.shader)
    report.validate_s.append(v.seconds)
    if not v.ok:
        raise WgslError(f"dataset: {rec.id} (seed {rec.seed}) does not validate: {v.diagnostics[0].format()}: "
                        f"the template {rec.family} is broken")
    r = run_case(rec.shader, templates.case_for(rec.family, rec.params, rec.seed))
    report.run_s.append(r.seconds)
    if not r.ok:
        raise WgslError(f"dataset: {rec.id} (seed {rec.seed}) runs but is wrong: {r.message}: the template "
                        f"{rec.family} or its numpy reference is broken")


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def readme(report: Report, command: str, per_family: int, seed: int) -> str:
    recs = report.records
    by_split = {s: [r for r in recs if r.split == s] for s in SPLITS}
    lines = [
        "# WGSL dataset: natural language -> WGSL compute shaders",
        "",
        f"{len(recs)} prompt/shader pairs from {len({r.family for r in recs})} template families "
        f"({per_family} distinct pairs per family, times its weight: 2 to 8 for the formula families; seed "
        f"{seed}), made by:",
        "",
        "```bash",
        command,
        "```",
        "",
        "The same command gives byte-identical JSONL files. Each family (`nanochat_plugins/wgsl/templates/`) draws "
        "parameters (constants, sizes, workgroup size, whether a value comes from a uniform) and writes the "
        "shader and an English prompt in one of several wordings; repeated pairs are skipped.",
        "",
    ]
    if report.checked:
        lines += [f"Every shader was validated by naga and run on `{report.adapter}` with test buffers; its "
                  "output matched the numpy reference of the operation.", ""]
    else:
        lines += ["The shaders were NOT validated or run when this copy was made (--no-check).", ""]
    lines += ["## Splits (by family: a val or test family never appears in train)", "",
              "| split | pairs | families |", "| --- | --- | --- |"]
    for s in SPLITS:
        fams = sorted({r.family for r in by_split[s]})
        lines.append(f"| {s} | {len(by_split[s])} | {', '.join(fams)} |")
    lines += ["", "## Record format (one JSON object a line)", "",
              "| key | what |", "| --- | --- |",
              "| `id` | `<family>-<n>` |",
              "| `family`, `category` | the template family and its category |",
              "| `split` | train, val or test |",
              "| `seed` | `templates.sample(family, seed)` rebuilds the pair; "
              "`templates.case_for(family, params, seed)` its test buffers and expected outputs |",
              "| `params` | the drawn parameters |",
              "| `prompt` | the natural-language request |",
              "| `shader` | the WGSL answer |",
              "",
              "Bindings follow one contract: inputs from binding 0, then the output, then a uniform if any.", ""]
    return "\n".join(lines)


def write(report: Report, out_dir: str | Path, command: str, per_family: int, seed: int) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for s in SPLITS:
        _atomic_write(out / f"{s}.jsonl", "".join(r.to_json() + "\n" for r in report.records if r.split == s))
    _atomic_write(out / "README.md", readme(report, command, per_family, seed))
    return out


_FIELDS = {"id": str, "family": str, "category": str, "split": str, "seed": int, "params": dict, "prompt": str,
           "shader": str}


def load(directory: str | Path = BUNDLED, splits: Iterable[str] = SPLITS) -> list[Record]:
    """Records of the chosen splits; a bad line is a one-line error naming the file, line and key."""
    directory = Path(directory)
    out: list[Record] = []
    for s in splits:
        path = directory / f"{s}.jsonl"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise WgslError(f"{path}: not found: make the dataset with `nanochat-cli wgsl dataset --out "
                            f"{directory}`") from None
        except UnicodeDecodeError:
            raise WgslError(f"{path}: not UTF-8: regenerate it with `nanochat-cli wgsl dataset`") from None
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise WgslError(f"{path}:{n}: not JSON ({e.msg}): regenerate the dataset") from None
            if not isinstance(obj, dict):
                raise WgslError(f"{path}:{n}: not a JSON object: regenerate the dataset")
            for key, typ in _FIELDS.items():
                if not isinstance(obj.get(key), typ) or isinstance(obj.get(key), bool) and typ is int:
                    raise WgslError(f"{path}:{n}: key {key!r} missing or not a {typ.__name__}: regenerate the dataset")
            extra = sorted(set(obj) - set(_FIELDS))
            if extra:
                raise WgslError(f"{path}:{n}: unknown key {extra[0]!r}: regenerate the dataset")
            out.append(Record(**obj))
    return out


def find(record_id: str, directory: str | Path = BUNDLED) -> Record:
    for rec in load(directory):
        if rec.id == record_id:
            return rec
    raise WgslError(f"dataset {directory}: no record {record_id!r}: ids look like chromatic.mix-003 "
                    f"(nanochat-cli wgsl templates lists the families)")
