"""The eight puzzles: number, module, title and goal; loading a skeleton or a solution file by path."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from puzzles.errors import PuzzleError

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Puzzle:
    number: int
    slug: str  # the module's name after the number: 01_<slug>
    title: str
    goal: str

    @property
    def module(self) -> str:
        return f"puzzles.{self.number:02d}_{self.slug}"

    @property
    def path(self) -> Path:
        return HERE / f"{self.number:02d}_{self.slug}.py"


PUZZLES = (
    Puzzle(1, "transformer_blueprint", "ModelSetup",
           "GPTConfig from depth, RoPE cos/sin with dtype handling, sliding-window masks, the parameter layout"),
    Puzzle(2, "optimization_layer", "OptimizerFactory",
           "parameter groups, Polar Express, FP8 module filter and fallback, AdamW/Muon steps, LR schedules"),
    Puzzle(3, "data_engine", "UniversalDataLoader",
           "DDP-aware parquet sharding, BOS-aligned best-fit packing, SFT packing and masks, TaskMixture order"),
    Puzzle(4, "inference_engine", "Engine.generate()",
           "KV cache with positions, sampling with temperature/top-k, the python tool state machine"),
    Puzzle(5, "rl_loop", "RLTrainer",
           "rollouts, advantages, masked token-level policy-gradient loss, optional KL"),
    Puzzle(6, "evaluator", "CORE_Evaluator",
           "multiple-choice batching by common prefix/suffix, loss-based selection, centered scores"),
    Puzzle(7, "sandbox_and_tokenizer", "Tokenizer + execute_code",
           "chat rendering with python-tool tokens, a process sandbox with limits that contains bad actors"),
    Puzzle(8, "mini_gpt", "MiniGPT",
           "the whole model: RMSNorm, RoPE, QK-norm, GQA, ReLU², value embeddings; loads a stock checkpoint"),
)


def get(number: int | str) -> Puzzle:
    """Puzzle by number (1..8, '3', '03') or by module name ('03_data_engine')."""
    text = str(number).strip()
    for p in PUZZLES:
        if text in (str(p.number), f"{p.number:02d}", f"{p.number:02d}_{p.slug}", p.module):
            return p
    raise PuzzleError(f"puzzle {number!r}: no such puzzle: use a number from 1 to {len(PUZZLES)} "
                      "(nanochat-cli puzzles list)")


def load_skeleton(puzzle: Puzzle) -> ModuleType:
    """The learner's module (names starting with a digit cannot be `import`ed, importlib can)."""
    return importlib.import_module(puzzle.module)


def load_solution(path: str | Path) -> ModuleType:
    """A file holding the learner's names (a reference solution, say), loaded under its own name."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise PuzzleError(f"--solution {path}: no such file: pass a .py file that defines the puzzle's names")
    name = f"puzzle_solution_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise PuzzleError(f"--solution {path}: not a Python file: pass a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
