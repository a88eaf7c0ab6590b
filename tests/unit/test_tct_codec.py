"""TCT encode/decode: the API, lossless round trips (escapes included), truncation, windows, bad input."""

import json

import pytest

import tct_github_workflow
from engine.errors import EngineError
from engine.tct import decode, encode, extract_window, legal_next_tokens, tokenizer, vocab_size
from engine.tct.vocab import N_POS, POS_STRIDE

WORKFLOW = {
    "name": "CI",
    "on": {"push": {"branches": ["main"]}, "pull_request": None, "workflow_dispatch": {
        "inputs": {"level": {"type": "choice", "options": ["a", "b"], "required": True, "default": "a"}}}},
    "permissions": {"contents": "read"},
    "concurrency": {"group": "ci-${{ github.ref }}", "cancel-in-progress": True},
    "env": {"FORCE_COLOR": "1", "RETRIES": 3},
    "jobs": {
        "test": {
            "runs-on": "${{ matrix.os }}",
            "timeout-minutes": 30,
            "strategy": {"fail-fast": False, "matrix": {"os": ["ubuntu-latest", "macos-latest"],
                                                        "python": [3.11, "3.12"]}},
            "steps": [
                {"uses": "actions/checkout@v4", "with": {"fetch-depth": 0}},
                {"name": "Set up Python", "uses": "actions/setup-python@v5",
                 "with": {"python-version": "${{ matrix.python }}"}},
                {"run": "pip install -e .\npytest -q\n", "shell": "bash", "env": {"CI": True}},
            ],
        },
        "deploy": {"needs": ["test"], "if": "github.ref == 'refs/heads/main'", "uses": "./.github/workflows/d.yml",
                   "secrets": "inherit"},
    },
}


def same(a, b) -> bool:
    """Equal values with the same key order and number types (json.dumps writes 1 and 1.0 differently)."""
    return json.dumps(a, ensure_ascii=False) == json.dumps(b, ensure_ascii=False)


def roundtrip(value) -> list[int]:
    text = json.dumps(value, ensure_ascii=False)
    tokens = encode(text)
    out, consumed, total = decode(tokens)
    assert same(json.loads(out), json.loads(text)), (out, text)
    assert consumed == total == len(tokens)
    return tokens


def test_api_shape_and_vocab():
    assert vocab_size() == 8192
    tokens = roundtrip(WORKFLOW)
    assert all(isinstance(t, int) and 0 <= t < 8192 for t in tokens)
    tok = tokenizer()
    assert tok.vocab.n_merges + 256 + tok.vocab.n_structural == 8192
    assert 0 < tok.segmenter.n_merges <= tok.vocab.n_merges  # merges ship with the package


def test_top_level_module_exposes_the_same_functions():
    for name in ("encode", "decode", "vocab_size", "extract_window"):
        assert getattr(tct_github_workflow, name) is globals()[name]
    text = json.dumps(WORKFLOW)
    assert tct_github_workflow.decode(tct_github_workflow.encode(text))[0] == decode(encode(text))[0]


def test_schema_valid_workflow_takes_no_escape_and_structure_costs_little():
    tok = tokenizer()
    tokens = tok.encode_value(WORKFLOW)
    assert tok.escapes == 0
    # compact: far fewer tokens than the minified JSON has bytes
    assert len(tokens) < len(json.dumps(WORKFLOW, separators=(",", ":"))) / 3


@pytest.mark.parametrize("value, escapes", [
    ([1, 2, {"a": None}], 1),  # root is not an object
    ("just a string", 1),
    (None, 1),
    (0, 1),
    ({"on": "push", "jobs": {}, "x-extra": {"deep": [1, [2, [3]]]}}, 1),  # unknown top-level key
    ({"on": "not-an-event", "jobs": {}}, 1),  # not in the enum
    ({"on": {"push": {"branches": "main"}}, "jobs": {}}, 1),  # string where a list belongs
    ({"on": {"push": {"branches": [1, "x", None]}}, "jobs": {}}, 2),  # first item escapes: explicit array start
    ({"on": {"push": {"branches": [[1], ["x"]]}}, "jobs": {}}, 2),
    ({"name": 5, "on": [], "jobs": {"j": {"runs-on": None, "steps": [{"with": {"k": None}}]}}}, 3),
    ({"jobs": {"bad id!": {"runs-on": "x"}}, "on": "push"}, 1),  # job id outside the pattern
    ({"on": "push", "jobs": {"j": {"timeout-minutes": -7.5e-3, "steps": [{"timeout-minutes": 10**30}]}}}, 0),
])
def test_documents_that_do_not_fit_round_trip_through_escapes(value, escapes):
    tok = tokenizer()
    roundtrip(value)
    tok.encode_value(value)
    assert tok.escapes == escapes


@pytest.mark.parametrize("value", [
    {},
    {"on": "push", "jobs": {}},
    {"name": "", "run-name": "ü ✓ 😀 \u0000 \t\n \"quoted\" \\ \ud800 lone surrogate", "on": "push", "jobs": {}},
    {"on": "push", "jobs": {"j": {"runs-on": "x", "timeout-minutes": 1.0, "steps": [{"run": "x" * 5000}]}}},
    {"on": {"schedule": [{"cron": "0 0 * * 0"}]}, "jobs": {"a": {"runs-on": ["self-hosted", "linux"]}}},
    {"on": "push", "jobs": {"a": {"runs-on": {"group": "g", "labels": "l"}, "container": "node:20",
                                  "services": {"db": {"image": "postgres", "ports": [5432, "80:80"]}}}}},
    {"on": "push", "env": "${{ fromJSON(inputs.env) }}", "jobs": {"a": {"strategy": {"matrix": "${{ x }}"},
                                                                          "steps": [{"with": "${{ y }}"}]}}},
    {"a": 1, "b": 1.5, "c": -1, "d": 127, "e": 128, "f": 12345678901234567890, "g": 1e300, "h": True},
])
def test_round_trip_keeps_values_order_and_number_types(value):
    roundtrip(value)


def test_key_order_is_kept_even_when_unusual():
    value = {"jobs": {"z": {"steps": [{"run": "b", "name": "a", "id": "c"}], "runs-on": "x"}}, "on": "push",
             "name": "last"}
    roundtrip(value)


def test_truncated_tokens_decode_as_far_as_they_can():
    tokens = encode(json.dumps(WORKFLOW))
    outputs = []
    for k in range(len(tokens) + 1):
        out, consumed, total = decode(tokens[:k])
        json.loads(out)  # always valid JSON
        assert total == k and consumed <= k
        assert decode(tokens[:consumed]) == (out, consumed, consumed)
        outputs.append(out)
    assert outputs[0] == "{}"
    assert outputs[-1] == json.dumps(WORKFLOW, ensure_ascii=False, separators=(",", ":"))
    assert len(set(outputs)) > len(tokens) // 3  # the partial document grows as tokens arrive


def test_partial_output_shows_open_containers_and_drops_incomplete_members():
    tokens = encode(json.dumps(WORKFLOW))
    full = json.loads(decode(tokens)[0])
    k = next(k for k in range(len(tokens)) if "jobs" in json.loads(decode(tokens[:k])[0]))
    partial = json.loads(decode(tokens[:k])[0])
    assert list(partial) == list(full)[: len(partial)]
    assert partial["jobs"] == {"test": {"runs-on": "${{ matrix.os }}"}}


def test_trailing_and_invalid_tokens_stop_decoding():
    tokens = encode(json.dumps(WORKFLOW))
    n = len(tokens)
    out = decode(tokens)[0]
    assert decode(tokens + tokens[:5]) == (out, n, n + 5)  # after the document ends
    for bad in (8192, -1, 10**9):
        assert decode(tokens[:10] + [bad] + tokens[10:])[1:] == (decode(tokens[:10])[1], n + 1)
    a = tokenizer().atoms
    assert decode([a.OBJ_END, *tokens]) == ("{}", 1, n + 1)  # an empty root object, then trailing tokens
    assert decode([a.ARR_END, *tokens]) == ("{}", 0, n + 1)  # refused at once: nothing decoded


def test_extract_window():
    tokens = encode(json.dumps(WORKFLOW))
    pos = tokenizer().vocab.pos_base
    assert extract_window(tokens, 0, 10) == [pos, *tokens[:10]]
    assert extract_window(tokens, 1, 5) == [pos + 1, *tokens[1:5]]
    assert extract_window(tokens, POS_STRIDE, POS_STRIDE + 3)[0] == pos + 1
    assert extract_window(tokens, POS_STRIDE + 1, POS_STRIDE + 3)[0] == pos + 2
    assert extract_window(tokens, 10**6, 10**6 + 5) == [pos + N_POS - 1]
    assert extract_window(tokens, 3, 3) == [extract_window(tokens, 3, 4)[0]]
    # a window from the document start decodes like the document prefix
    assert decode(extract_window(tokens, 0, len(tokens))[1:])[0] == decode(tokens)[0]
    for start, end in ((-1, 3), (5, 4)):
        with pytest.raises(EngineError, match="needs 0 <= start <= end"):
            extract_window(tokens, start, end)


@pytest.mark.parametrize("bad, needle", [
    ("", "empty"),
    ("   \n", "empty"),
    (b"\xff\xfe{}", "not UTF-8"),
    ("{", "not valid JSON"),
    ("{} {}", "not valid JSON"),
    ('{"a": NaN}', "not valid JSON"),
    ("on: push", "not valid JSON"),
    (12, "expected JSON text"),
])
def test_bad_input_is_a_one_line_error(bad, needle):
    with pytest.raises(EngineError, match=needle) as err:
        encode(bad)
    assert "\n" not in str(err.value)


def test_bytes_input_is_utf8_json():
    assert encode(json.dumps(WORKFLOW).encode()) == encode(json.dumps(WORKFLOW))


def test_legal_next_tokens_follow_the_schema_state():
    tok = tokenizer()
    tokens = encode(json.dumps(WORKFLOW))
    for k in range(0, len(tokens), 3):
        assert tokens[k] in legal_next_tokens(tokens[:k])
    assert legal_next_tokens(tokens) == []
    first = set(legal_next_tokens([]))
    a = tok.atoms
    assert a.ESC not in first and a.OBJ_END not in first  # strict: no escape; `on` and `jobs` are required
    assert a.key_id["on"] in first and a.key_id["uses"] not in first  # `uses` is not a top-level key
    assert a.ESC in legal_next_tokens([], allow_escape=True)
    with pytest.raises(EngineError, match="prefix token 0"):
        legal_next_tokens([a.ARR_END])


def test_legal_tokens_equal_trying_every_token():
    """The shortcuts in legal_tokens (string bytes, shared continuations) agree with brute force."""
    tok = tokenizer()
    misfit = {"on": {"push": {"branches": "main"}}, "x": [1, {"y": None}], "jobs": {"a b": {"steps": [{"k": 1}]}}}
    for doc, strict in ((WORKFLOW, True), (misfit, False)):
        tokens = encode(json.dumps(doc))
        for k in range(0, len(tokens), max(1, len(tokens) // 12)):
            m = tok.machine_after(tokens[:k], strict=strict)
            brute = [t for t, atoms in tok.expansion.items() if all(map(m.clone(strict).step, atoms))]
            assert tok.legal_tokens(m) == sorted(brute), k
            assert tokens[k] in brute


def test_every_sampled_token_from_legal_sets_keeps_the_document_decodable():
    """A seeded walk that always picks a legal token (preferring ones that close things) ends in a
    document the strict machine accepted at every step."""
    import random

    tok = tokenizer()
    rng = random.Random(0)
    closers = {tok.atoms.OBJ_END, tok.atoms.ARR_END, 255}
    for _ in range(2):
        m = tok.machine_after([])
        tokens: list[int] = []
        while not m.done and len(tokens) < 100:
            legal = tok.legal_tokens(m)
            assert legal
            ending = [t for t in legal if tok.expansion[t][-1] in closers]
            choice = rng.choice(ending if ending and rng.random() < 0.7 else legal)
            assert tok.advance(m, choice)
            tokens.append(choice)
        out, consumed, total = decode(tokens)
        json.loads(out)
        if m.done:
            assert consumed == total


def test_pattern_digits_are_ascii_as_in_ecma_regex_and_strict_mode_agrees_with_the_validator():
    """Regression: '۰' (ARABIC-INDIC DIGIT ZERO) matches Python's \\d but not ECMA-262's, which the schema's
    `^\\d+(\\.\\d+|\\*)?$` version pattern (and check-jsonschema) means. Strict legal tokens once refused its
    first byte while the plain-jsonschema validator accepted the document; now both read \\d as [0-9]."""
    from engine.tct.ecma import ecma_pattern
    from engine.tct.validate import workflow_errors

    assert ecma_pattern(r"^\d+(\.\d+|\*)?$") == r"^[0-9]+(\.[0-9]+|\*)?$"
    assert ecma_pattern(r"[\d_]\W\\d") == r"[0-9_][^A-Za-z0-9_]\\d"  # in brackets; an escaped backslash stays

    def doc(version: str) -> dict:
        return {"on": "push", "jobs": {"a": {"runs-on": "x", "snapshot": {"image-name": "i", "version": version},
                                             "steps": [{"run": "make"}]}}}

    tok = tokenizer()
    for version, valid in (("0", True), ("12.3", True), ("7*", True), ("۰", False), ("1.۲", False), ("x", False)):
        tokens = encode(json.dumps(doc(version)))
        assert (workflow_errors(doc(version)) == []) == valid, version
        in_strict = []
        for k in range(len(tokens)):
            m = tok.machine_after(tokens[:k], strict=True) if all(in_strict) else None
            in_strict.append(m is not None and tokens[k] in tok.legal_tokens(m))
        assert all(in_strict) == valid, version  # strict sampling reaches exactly the valid versions
        assert all(tokens[k] in legal_next_tokens(tokens[:k], allow_escape=True) for k in range(len(tokens)))
        assert json.loads(decode(tokens)[0]) == doc(version)  # and every one round-trips


def test_strict_number_bytes_stay_on_a_json_number():
    """A NUM's text takes only bytes that keep it a JSON number prefix (a sampler could otherwise write
    '-3.14-1409...' forever: no END would ever be legal)."""
    tok = tokenizer()
    a = tok.atoms
    prefix = tok.segmenter.encode(tok.walker.atoms({"on": "push", "jobs": {"a": {"timeout-minutes": 1000}}}))
    k = next(i for i in range(len(prefix)) if a.NUM in tok.expansion[prefix[i]])
    m = tok.machine_after(prefix[:k + 1])  # just after NUM (merged with what came before it)
    assert m.legal_atoms() == set(b"-0123456789")
    for b in b"1.5e-":
        assert m.step(b)
    assert m.legal_atoms() == set(b"0123456789") and not m.clone(True).step(ord("-"))
    assert m.step(ord("3")) and 255 in m.legal_atoms()
