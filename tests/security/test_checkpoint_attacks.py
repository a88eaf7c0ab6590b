"""Checkpoint attacks and faults (issue 12): code in a pickle, silent corruption, truncation, malformed metas,
files from another run, leftovers of killed saves. Each test plants the attack in a real checkpoint written by
engine.train and drives every loader at it: the registry listing, chat, eval, `--resume` and `--init-from`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from ckpt_helpers import STOCK_FIXTURE
from engine_assets import build_assets, train_in_process

from engine import shared
from engine.checkpoint import checkpoint_dir, load_meta, load_model_state, save_model_and_meta, save_rank_state
from engine.errors import EngineError
from engine.gpt import GPT, GPTConfig, load_state_dict_compat
from engine.inference_load import load_model
from engine.telemetry import TelemetryReader
from nanochat_cli.cli import main as cli_main
from nanochat_cli.services.checkpoints.chat import ChatSession
from nanochat_cli.services.checkpoints.evaluate import evaluate
from nanochat_cli.services.checkpoints.registry import CheckpointRegistry

ROOT = Path(__file__).resolve().parents[2]
STEPS = 4  # the source run saves steps 2 and 4


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A base dir holding run "src" (checkpoints at steps 2 and 4, written by engine.train) and its assets."""
    root = tmp_path_factory.mktemp("trained")
    assets = build_assets(root / "assets")
    assert train_in_process(root / "base", assets, "src", "--num-iterations", str(STEPS), "--save-every", "2") == 0
    return root / "base", assets


@pytest.fixture
def base(trained, tmp_path) -> Path:
    """A private copy of the trained base dir (each test damages its own)."""
    src, _ = trained
    shutil.copytree(src, tmp_path / "b")
    return tmp_path / "b"


@pytest.fixture
def assets(trained) -> dict[str, str]:
    return trained[1]


def ckpt(base: Path) -> Path:
    return checkpoint_dir(base, "src")


def only_last_step(base: Path) -> Path:
    """Drop step 2 so that step 4 is the only one (nothing to fall back to)."""
    for p in ckpt(base).glob("*_000002*"):
        p.unlink()
    return ckpt(base)


class Payload:
    """Pickles as a call of exec(code): what a malicious checkpoint runs on a plain torch.load."""

    def __init__(self, marker: Path):
        self.code = f"open({str(marker)!r}, 'w').write('pwned')"

    def __reduce__(self):
        return (exec, (self.code,))


def plant_payload(path: Path, marker: Path, kind: str = "protocol2") -> None:
    """Replace a checkpoint file with real-looking weights plus a payload, and record its checksum in the meta
    as an attacker would (checksums catch damage, not intent: the weights-only load is what must hold)."""
    obj = {"transformer.wte.weight": torch.zeros(2, 2), "x": Payload(marker)}
    if kind == "protocol2":
        torch.save(obj, path)
    elif kind == "protocol4":  # STACK_GLOBAL instead of GLOBAL
        torch.save(obj, path, pickle_protocol=4)
    else:  # the legacy (pre-zip) torch format
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    meta_path = path.parent / f"meta_{path.name.split('_')[1][:6]}.json"
    meta = json.loads(meta_path.read_text())
    if "files" in meta:
        meta["files"][path.name] = {"bytes": path.stat().st_size, "sha256": shared.sha256_file(path)}
        meta_path.write_text(json.dumps(meta))


def one_line_error(text: str, *fragments: str) -> str:
    line = text.strip()
    assert line and "\n" not in line and "Traceback" not in line, text
    for f in fragments:
        assert f in line, (f, line)
    return line


def entries(base: Path) -> dict[int, object]:
    return {e.step: e for e in CheckpointRegistry(base, index_file=base / "index.json").scan() if e.tag == "src"}


def events(base: Path, run: str) -> list:
    return TelemetryReader(base / "runs" / run / "telemetry.jsonl").read_new()


def run_train(base: Path, assets: dict[str, str], run: str, capsys, *flags: str) -> tuple[int, str]:
    capsys.readouterr()
    code = train_in_process(base, assets, run, "--num-iterations", str(STEPS + 2), "--save-every", "2", *flags)
    return code, capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- code in a pickle


@pytest.mark.parametrize("kind", ["protocol2", "protocol4", "legacy"])
def test_pickle_payload_is_refused_by_the_listing_and_every_loader(base, tmp_path, capsys, kind):
    marker = tmp_path / "pwned"
    model = ckpt(base) / "model_000004.pt"
    plant_payload(model, marker, kind)

    entry = entries(base)[4]
    assert entry.status == "corrupt" and "refused" in entry.problem and not entry.resumable
    with pytest.raises(EngineError) as e:
        ChatSession.from_checkpoint(model)
    one_line_error(str(e.value), str(model), "refused")
    with pytest.raises(EngineError):
        evaluate(model, tokens=0, max_new_tokens=0)
    assert cli_main(["chat", "--checkpoint", str(model), "-p", "hi"]) == 2
    one_line_error(capsys.readouterr().err, "refused")
    assert cli_main(["eval", "--checkpoint", str(model), "--tokens", "0"]) == 2
    one_line_error(capsys.readouterr().err, "refused")
    assert not marker.exists()


@pytest.mark.parametrize("target", ["model", "optim"])
def test_pickle_payload_never_runs_under_resume(base, assets, tmp_path, capsys, target):
    marker = tmp_path / "pwned"
    d = only_last_step(base)
    path = d / ("model_000004.pt" if target == "model" else "optim_000004_rank0.pt")
    plant_payload(path, marker)
    code, err = run_train(base, assets, "src", capsys, "--resume")
    assert code == 1 and not marker.exists()
    one_line_error(err, str(path), "refused", "could run code")


def test_pickle_payload_never_runs_under_init_from(base, assets, tmp_path, capsys):
    marker = tmp_path / "pwned"
    model = ckpt(base) / "model_000004.pt"
    plant_payload(model, marker)
    code, err = run_train(base, assets, "fresh", capsys, "--init-from", str(model))
    assert code == 1 and not marker.exists()
    one_line_error(err, str(model), "refused")


# ---------------------------------------------------------------------------------------------- silent corruption


def flip_bytes(path: Path, count: int = 4096) -> None:
    """Invert `count` bytes inside the largest tensor record: the zip stays valid, the weights change."""
    with zipfile.ZipFile(path) as z:
        info = max(z.infolist(), key=lambda i: i.file_size)
    blob = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 64  # inside the data
    count = min(count, info.file_size - 128)
    blob[start:start + count] = bytes(b ^ 0xFF for b in blob[start:start + count])
    path.write_bytes(bytes(blob))
    torch.load(path, weights_only=True)  # still loads: only the checksum can tell


def test_flipped_bytes_are_refused_by_the_listing_and_every_loader(base, assets, capsys):
    model = ckpt(base) / "model_000004.pt"
    flip_bytes(model)
    entry = entries(base)[4]
    assert entry.status == "corrupt" and "sha256" in entry.problem
    for load in (lambda: load_model(model), lambda: ChatSession.from_checkpoint(model),
                 lambda: evaluate(model, tokens=0, max_new_tokens=0)):
        with pytest.raises(EngineError) as e:
            load()
        one_line_error(str(e.value), str(model), "sha256")
    code, err = run_train(base, assets, "fresh", capsys, "--init-from", str(model))
    assert code == 1
    one_line_error(err, str(model), "sha256")


def test_resume_skips_a_corrupt_newest_step_with_a_warning(base, assets, capsys):
    flip_bytes(ckpt(base) / "model_000004.pt")
    code, _ = run_train(base, assets, "src", capsys, "--resume")
    assert code == 0
    evs = events(base, "src")
    start = max(i for i, e in enumerate(evs) if e.event == "run_start")
    run = evs[start:]
    warnings = [e.message for e in run if e.event == "warning"]
    assert any("model_000004.pt" in w and "sha256" in w and "resuming from step 2" in w for w in warnings)
    assert run[0].resumed_from_step == 2 and run[-1].status == "finished" and run[-1].step == STEPS + 2
    assert [e.step for e in run if e.event == "step"][0] == 3


def test_truncated_optimizer_file_is_not_resumable_and_resume_falls_back(base, assets, capsys):
    optim = ckpt(base) / "optim_000004_rank0.pt"
    optim.write_bytes(optim.read_bytes()[: optim.stat().st_size // 2])
    entry = entries(base)[4]
    assert entry.status == "complete" and not entry.resumable and "optim_000004_rank0.pt" in entry.optim_problem
    assert entries(base)[2].resumable
    code, _ = run_train(base, assets, "src", capsys, "--resume")
    assert code == 0
    run = events(base, "src")
    run = run[max(i for i, e in enumerate(run) if e.event == "run_start"):]
    assert run[0].resumed_from_step == 2
    assert any(e.event == "warning" and "optim_000004_rank0.pt" in e.message for e in run)


def test_stock_checkpoint_without_checksums_loads_unverified(tmp_path):
    if not STOCK_FIXTURE.is_dir():
        pytest.skip("needs ../shared/fixtures")
    d = checkpoint_dir(tmp_path / "base", "d4")
    d.mkdir(parents=True)
    for name in ("model_000000.pt", "meta_000000.json"):
        shutil.copy(STOCK_FIXTURE / name, d / name)
    (entry,) = CheckpointRegistry(tmp_path / "base", index_file=tmp_path / "index.json").scan()
    assert entry.status == "complete" and entry.integrity == "unverified"
    meta = load_meta(d, 0)
    model = GPT(GPTConfig(**meta["model_config"]))
    load_state_dict_compat(model, load_model_state(d, 0))  # weights-only, no checksum to check


# ---------------------------------------------------------------------------------------------- malformed input


def damage(base: Path, how: str) -> Path:
    """Damage step 4 of run src the way `how` says; returns the file the error must name."""
    d = ckpt(base)
    meta_path = d / "meta_000004.json"
    meta = json.loads(meta_path.read_text())
    if how == "meta_not_utf8":
        meta_path.write_bytes(b"\xff\xfe" + meta_path.read_bytes())
        return meta_path
    if how == "model_config_list":
        meta["model_config"] = list(meta["model_config"].values())
    elif how == "meta_is_a_list":
        meta = []
    elif how.startswith("other_vocab"):  # a model file from a run with another vocabulary
        cfg = dict(meta["model_config"], vocab_size=2048)
        other = GPT(GPTConfig(**cfg))
        torch.save(other.state_dict(), d / "model_000004.pt")
        if how == "other_vocab":
            meta.pop("files", None)  # as a stock meta: nothing but the shapes can tell
        meta_path.write_text(json.dumps(meta))
        return d / "model_000004.pt"
    meta_path.write_text(json.dumps(meta))
    return meta_path


CASES = ["meta_not_utf8", "model_config_list", "meta_is_a_list", "other_vocab", "other_vocab_checked"]


@pytest.mark.parametrize("how", CASES)
def test_malformed_checkpoints_give_one_line_errors_under_resume(base, assets, capsys, how):
    named = damage(base, how)
    only_last_step(base)
    code, err = run_train(base, assets, "src", capsys, "--resume")
    assert code == 1
    one_line_error(err, "engine.train: error:", str(named))


@pytest.mark.parametrize("how", CASES)
def test_malformed_checkpoints_give_one_line_errors_under_init_from(base, assets, capsys, how):
    named = damage(base, how)
    code, err = run_train(base, assets, "fresh", capsys, "--init-from", str(ckpt(base) / "model_000004.pt"))
    assert code == 1
    one_line_error(err, "engine.train: error:", str(named))


@pytest.mark.parametrize("how", CASES)
def test_malformed_checkpoints_give_one_line_errors_in_chat_and_eval(base, how):
    named = damage(base, how)
    model = ckpt(base) / "model_000004.pt"
    for load in (lambda: ChatSession.from_checkpoint(model), lambda: evaluate(model, tokens=0, max_new_tokens=0)):
        with pytest.raises(EngineError) as e:
            load()
        one_line_error(str(e.value), str(named))


# ---------------------------------------------------------------------------------------------- killed saves

_SLOW_WRITER = """
import sys, time
from engine.shared import atomic_write
def write(f):
    f.write(b"x" * 4096); f.flush()
    print("writing", flush=True)
    time.sleep(60)
atomic_write(sys.argv[1], write)
"""


def killed_write(path: Path) -> Path:
    """Start a real atomic write of `path`, SIGKILL the writer mid-file, return the temp file it left."""
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == b"writing"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    (tmp,) = path.parent.glob(f".{path.name}.*.tmp")
    return tmp


def test_leftovers_of_killed_saves_are_removed_at_the_next_save_and_at_scan(base):
    d = ckpt(base)
    left = [killed_write(d / "model_000006.pt"), killed_write(d / "optim_000006_rank0.pt")]
    old_style = d / ".meta_000006.json.k2j4h5g6.tmp"  # what earlier versions left (no writer pid in the name)
    old_style.write_text("{")
    live = d / f".model_000008.pt.{os.getpid()}-{shared._host_id()}.ab12cd34.tmp"  # this process: alive
    live.write_bytes(b"a save in progress in a live process")
    assert all(p.exists() for p in left)

    entries(base)  # a scan
    assert not any(p.exists() for p in [*left, old_style]) and live.exists()

    left = [killed_write(d / "model_000006.pt"), killed_write(d / "optim_000006_rank0.pt")]
    save_rank_state(d, 6, 0, {"state": {}, "param_groups": []}, None, None)
    save_model_and_meta(d, 6, {"w": torch.ones(1)}, {"model_config": {}})
    assert not any(p.exists() for p in left) and live.exists()
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp") and p != live]


def test_a_rank_never_removes_another_ranks_save_in_progress(base):
    d = ckpt(base)
    other = killed_write(d / "optim_000006_rank1.pt")
    save_rank_state(d, 6, 0, {"state": {}, "param_groups": []}, None, None)
    assert other.exists()  # rank 1's leftover is rank 1's to remove
    save_rank_state(d, 6, 1, {"state": {}, "param_groups": []}, None, None)
    assert not other.exists()



def test_an_index_cached_before_the_checks_does_not_keep_a_payload_listed_complete(base, tmp_path):
    model = ckpt(base) / "model_000004.pt"
    plant_payload(model, tmp_path / "pwned")
    index = base / "index.json"
    entries(base)  # cache the listing, then make the cache say what an earlier version would have
    data = json.loads(index.read_text())
    for cached in data["entries"].values():
        cached["entry"].update(status="complete", problem="")
        cached["entry"].pop("integrity", None)
    data["version"] = 1
    index.write_text(json.dumps(data))
    assert entries(base)[4].status == "corrupt"
