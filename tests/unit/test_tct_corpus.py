"""TCT on every workflow in ../shared/data: lossless, no escape for schema-valid files, merges reproducible.

The data lives next to the repository (../shared from the repo root, as in CI) and is never copied into
it; NANOCHAT_SHARED points elsewhere (e.g. from a git worktree). Without it these tests skip.
"""

import json
import os
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from engine.tct import decode, encode, load_merges, tokenizer
from engine.tct.corpus import list_workflow_files, load_corpus
from engine.tct.schema import workflow_schema

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("NANOCHAT_SHARED") or ROOT.parent / "shared")
DATA_DIRS = [SHARED / "data" / "workflows-real", SHARED / "data" / "workflows-starter"]

pytestmark = pytest.mark.skipif(not all(d.is_dir() for d in DATA_DIRS),
                                reason=f"shared workflow data not found under {SHARED / 'data'}")


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(DATA_DIRS)


def test_every_workflow_round_trips_losslessly(corpus):
    assert len(corpus.docs) + len(corpus.skipped) == len(list_workflow_files(DATA_DIRS))
    assert len(corpus.docs) > 10 * max(1, len(corpus.skipped))
    for path, text in corpus.docs:
        tokens = encode(text)
        out, consumed, total = decode(tokens)
        assert consumed == total == len(tokens), path
        # same values, same key order, same number types
        assert json.dumps(json.loads(out)) == json.dumps(json.loads(text)), path


def test_skipped_files_have_one_line_reasons(corpus):
    for path, reason in corpus.skipped:
        assert reason and "\n" not in reason and str(path) not in reason


def test_schema_valid_workflows_take_no_escape(corpus):
    validator = Draft7Validator(workflow_schema())
    tok = tokenizer()
    valid = 0
    for path, text in corpus.docs:
        doc = json.loads(text)
        tok.encode_value(doc)
        if validator.is_valid(doc):
            valid += 1
            assert tok.escapes == 0, path
    assert valid > len(corpus.docs) // 2


@pytest.mark.slow
def test_shipped_merges_are_reproducible_from_the_shared_data(tmp_path):
    """`python -m engine.tct.train_merges` on the shared data writes exactly the shipped merges."""
    from engine.tct.train_merges import main

    out = tmp_path / "merges.txt"
    assert main(["--input", str(DATA_DIRS[0]), "--input", str(DATA_DIRS[1]), "--output", str(out)]) == 0
    assert load_merges(out.read_text()) == tokenizer().merges
