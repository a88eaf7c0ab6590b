"""Validate a workflow against the pinned schema the way check-jsonschema does (ECMA-262 patterns).

`workflow_errors(doc)` lists one line per schema violation (its JSON path, then the message), the deepest
first; an empty list means the document is a valid workflow. The validator is jsonschema's Draft 7 with the
`pattern` keyword evaluated through `engine.tct.ecma` (`\\d` is [0-9], as in ECMA-262), the one place where
a plain `jsonschema` run and check-jsonschema disagree on this schema.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from engine.errors import EngineError
from engine.tct.ecma import compiled


def _ecma_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    from jsonschema import ValidationError

    if validator.is_type(instance, "string") and not compiled(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern}")


@cache
def workflow_validator() -> Any:
    """A Draft 7 validator of the pinned workflow schema with ECMA-262 `pattern` semantics."""
    try:
        from jsonschema import Draft7Validator, validators
    except ImportError:
        raise EngineError("jsonschema: not installed: pip install 'jsonschema>=4.18' to validate workflows") from None
    from engine.tct.schema import workflow_schema

    cls = validators.extend(Draft7Validator, {"pattern": _ecma_pattern})
    return cls(workflow_schema())


def workflow_errors(doc: Any, limit: int = 5) -> list[str]:
    """At most `limit` one-line schema violations of `doc` ("$.jobs.build: 'runs-on' is a required property"),
    most specific first; [] when it is a valid workflow."""
    from jsonschema.exceptions import best_match, relevance

    errors = sorted(workflow_validator().iter_errors(doc), key=relevance)
    lines = []
    for top in errors[:limit]:
        e = best_match([top])  # into oneOf/anyOf: the branch that came closest says what is wrong
        message = " ".join(e.message.split())
        if len(message) > 160:
            message = message[:157] + "..."
        lines.append(f"{e.json_path}: {message}")
    return lines
