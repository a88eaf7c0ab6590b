"""Property tests: random JSON and random workflow-schema documents round-trip; truncation stays consistent."""

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.tct import decode, encode, tokenizer
from engine.tct.ecma import ecma_pattern
from engine.tct.schema import workflow_schema
from engine.tct.validate import workflow_validator

# derandomized: CI sees the same examples every run (a new counterexample is found by a developer raising
# max_examples, not by chance in someone else's CI run)
SETTINGS = settings(max_examples=60, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
SCHEMA = workflow_schema()
VALIDATOR = workflow_validator()  # ECMA-262 patterns, as check-jsonschema reads them
ANNOTATIONS = {"$comment", "description", "default", "examples", "title"}

text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from("${}. -_/\n"),
               max_size=30)
scalars = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=False,
                                                                                allow_infinity=False) | text
any_json = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(text, kids, max_size=4),
                        max_leaves=25)


def same(a, b) -> bool:
    return json.dumps(a) == json.dumps(b)


def check_roundtrip(value) -> list[int]:
    tokens = encode(json.dumps(value))
    out, consumed, total = decode(tokens)
    assert same(json.loads(out), value)
    assert consumed == total == len(tokens)
    return tokens


@SETTINGS
@given(any_json)
def test_any_json_round_trips(value):
    check_roundtrip(value)


@SETTINGS
@given(any_json, st.data())
def test_truncation_is_consistent(value, data):
    tokens = encode(json.dumps(value))
    k = data.draw(st.integers(0, len(tokens)))
    out, consumed, total = decode(tokens[:k])
    json.loads(out)
    assert consumed <= total == k
    assert decode(tokens[:consumed]) == (out, consumed, consumed)


# ------------------------------------------------------------------ documents drawn from the schema itself

def resolve(ref: str):
    node = SCHEMA
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def flatten(schema, draw, depth=0) -> list[dict]:
    """The schema as a list of dicts that all apply (refs, allOf and a drawn oneOf/anyOf branch expanded)."""
    if schema is True or depth > 20:
        return []
    out = []
    for key in ("oneOf", "anyOf"):
        if key in schema:
            out += flatten(draw(st.sampled_from(schema[key])), draw, depth + 1)
    for sub in schema.get("allOf", ()):
        out += flatten(sub, draw, depth + 1)
    if "$ref" in schema:  # draft-07: keywords beside $ref are ignored
        return out + flatten(resolve(schema["$ref"]), draw, depth + 1)
    return out + [{k: v for k, v in schema.items() if k not in ("oneOf", "anyOf", "allOf") and k not in ANNOTATIONS}]


def value_strategy(schema, depth):
    @st.composite
    def build(draw):
        parts = flatten(schema, draw)
        enums = [p.get("enum", [p["const"]] if "const" in p else None) for p in parts]
        enums = [e for e in enums if e is not None]
        if enums:
            return draw(st.sampled_from([v for v in enums[0] if all(v in e for e in enums)] or enums[0]))
        types = set.intersection(*[{p["type"]} if isinstance(p.get("type"), str) else set(p["type"])
                                   for p in parts if "type" in p] or [set()])
        if not types:
            types = {"string", "number", "boolean", "null"} | ({"object", "array"} if depth < 3 else set())
        kind = draw(st.sampled_from(sorted(types)))
        if kind == "string":
            pattern = next((p["pattern"] for p in parts if "pattern" in p), None)
            if pattern:
                return draw(st.from_regex(ecma_pattern(pattern), fullmatch=True).filter(lambda s: len(s) < 60))
            return draw(text.filter(lambda s: len(s) >= max([p.get("minLength", 0) for p in parts] + [0])))
        if kind in ("number", "integer"):
            return draw(st.integers(0, 10**6) | st.floats(0, 100, allow_nan=False))
        if kind == "boolean":
            return draw(st.booleans())
        if kind == "null":
            return None
        if kind == "array":
            items = next((p["items"] for p in parts if "items" in p), True)
            lo = max([p.get("minItems", 0) for p in parts] + [0])
            return draw(st.lists(value_strategy(items, depth + 1), min_size=lo, max_size=max(lo, 3 - depth // 2)))
        props = {}
        for p in parts:
            props.update(p.get("properties", {}))
        required = [k for p in parts for k in p.get("required", ())]
        chosen = list(dict.fromkeys(required + draw(st.lists(st.sampled_from(sorted(props)), max_size=3,
                                                             unique=True) if props else st.just([]))))
        extra = []
        patterns = [pp for p in parts for pp in p.get("patternProperties", {}).items()]
        closed = any(p.get("additionalProperties") is False for p in parts)
        n_extra = draw(st.integers(max([p.get("minProperties", 0) for p in parts] + [0]) if not chosen else 0,
                                   2 if depth < 3 else 1))
        for _ in range(n_extra if patterns or not closed else 0):
            if patterns:
                pat, sub = draw(st.sampled_from(patterns))
                key = draw(st.from_regex(ecma_pattern(pat), fullmatch=True).filter(lambda s: len(s) < 20))
            else:
                key, sub = draw(text), next((p["additionalProperties"] for p in parts
                                             if isinstance(p.get("additionalProperties"), dict)), True)
            extra.append((key, sub))
        order = draw(st.permutations(chosen)) if chosen else []
        doc = {}
        for k in order:
            doc[k] = draw(value_strategy(props.get(k, True), depth + 1))
        for k, sub in extra:
            if k not in doc:
                doc[k] = draw(value_strategy(sub, depth + 1))
        return doc

    return build()


workflows = value_strategy(SCHEMA, 0)


@SETTINGS
@given(workflows)
def test_schema_documents_round_trip_and_valid_ones_take_no_escape(doc):
    tok = tokenizer()
    check_roundtrip(doc)
    tok.encode_value(doc)
    if VALIDATOR.is_valid(doc):
        assert tok.escapes == 0, doc


@settings(max_examples=30, deadline=None, database=None, derandomize=True)
@given(workflows, st.data())
def test_schema_documents_legal_next_tokens_contain_the_actual_next_token(doc, data):
    tok = tokenizer()
    tokens = tok.encode_value(doc)
    k = data.draw(st.integers(0, len(tokens) - 1))
    strict = tok.escapes == 0 and VALIDATOR.is_valid(doc)
    assert tokens[k] in tok.legal_next_tokens(tokens[:k], allow_escape=not strict)


def test_schema_generator_mostly_produces_valid_workflows():
    """The generator above is only useful if most of what it draws validates."""
    valid = []

    @settings(max_examples=60, deadline=None, database=None, derandomize=True)
    @given(workflows)
    def probe(doc):
        valid.append(VALIDATOR.is_valid(doc))

    probe()
    assert sum(valid) >= len(valid) // 3, f"{sum(valid)}/{len(valid)} valid"


def test_printable_keys_survive():
    check_roundtrip({k: k for k in string.printable})
