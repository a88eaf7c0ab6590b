"""What an evaluation of a checkpoint produced: val bpb and the eval prompt set's completions.

Plain dataclasses (no torch) so the registry can keep reports in its JSON index and screens can show them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class SampleResult:
    name: str  # the eval prompt's name
    mode: str  # "chat" | "continue"
    prompt: str
    completion: str
    tokens: int
    seconds: float


@dataclass
class EvalReport:
    checkpoint: str  # the model_XXXXXX.pt file
    step: int
    val_bpb: float | None  # None when no held-out data was given
    eval_tokens: int  # tokens the bpb was measured on
    data_dir: str | None
    samples: list[SampleResult] = field(default_factory=list)
    seconds: float = 0.0
    created: float = 0.0  # unix time
    device: str = "cpu"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvalReport:
        return cls(**{**d, "samples": [SampleResult(**s) for s in d.get("samples", [])]})
