"""The control channel: TUI requests reach the trainer once, bad ones are rejected, all ranks agree."""

import json
import threading
from types import SimpleNamespace

import pytest

from engine.config import TrainConfig
from engine.control import (
    CONTROL_FILE,
    OFFSET_FILE,
    ControlChannel,
    ControlRequest,
    apply_patch,
    send_request,
)
from engine.errors import EngineError


def test_send_and_poll_in_order(tmp_path):
    ch = ControlChannel(tmp_path)
    assert ch.poll(0) == []  # no control file yet
    ids = [send_request(tmp_path, "save_now"), send_request(tmp_path, "patch", {"lr_scale": 0.5}),
           send_request(tmp_path, "stop")]
    got = ch.poll(1)
    assert [r.id for r in got] == ids
    assert [r.kind for r in got] == ["save_now", "patch", "stop"]
    assert got[1].changes == {"lr_scale": 0.5} and ch.rejected == []
    assert ch.poll(2) == []  # each request is delivered once


def test_offset_persists_across_trainer_restarts(tmp_path):
    send_request(tmp_path, "stop")
    assert [r.kind for r in ControlChannel(tmp_path).poll(0)] == ["stop"]
    assert int((tmp_path / OFFSET_FILE).read_text()) == (tmp_path / CONTROL_FILE).stat().st_size
    resumed = ControlChannel(tmp_path)  # a resumed run must not stop again on the old request
    assert resumed.poll(10) == []
    rid = send_request(tmp_path, "save_now")
    assert [r.id for r in resumed.poll(11)] == [rid]


def test_partial_line_waits_for_its_newline(tmp_path):
    ch = ControlChannel(tmp_path)
    line = ControlRequest(kind="save_now").model_dump_json() + "\n"
    path = tmp_path / CONTROL_FILE
    path.write_text(line[:20])
    assert ch.poll(0) == [] and ch.offset == 0
    with open(path, "a") as f:
        f.write(line[20:])
    assert [r.kind for r in ch.poll(1)] == ["save_now"]


def test_malformed_requests_become_rejections(tmp_path):
    ch = ControlChannel(tmp_path)
    with open(tmp_path / CONTROL_FILE, "a") as f:
        f.write("garbage\n")
        f.write(json.dumps({"v": 1, "id": "r-2", "kind": "reboot", "time": 1.0}) + "\n")
        f.write(json.dumps({"v": 1, "id": "r-3", "kind": "patch", "changes": {}, "time": 1.0}) + "\n")
        f.write(json.dumps({"v": 9, "id": "r-4", "kind": "stop", "time": 1.0}) + "\n")
    good = send_request(tmp_path, "save_now")
    got = ch.poll(5)
    assert [r.id for r in got] == [good]  # the good one still gets through
    acks = ch.rejected
    assert [a.request_id for a in acks] == ["", "r-2", "r-3", "r-4"]
    assert all(not a.ok and a.step == 5 and a.event == "control_ack" for a in acks)
    assert acks[0].message.startswith("rejected: request: Invalid JSON")
    assert acks[1].message.startswith("rejected: kind:") and acks[1].kind == "reboot"
    assert acks[2].message == "rejected: request: a patch needs at least one change"
    assert "newer than this engine's v1" in acks[3].message
    assert ch.poll(6) == [] and ch.rejected == []


def test_send_request_validates(tmp_path):
    with pytest.raises(EngineError, match="run dir .* not found"):
        send_request(tmp_path / "nope", "stop")
    with pytest.raises(EngineError, match="control: reboot"):
        send_request(tmp_path, "reboot")
    with pytest.raises(EngineError, match="at least one change"):
        send_request(tmp_path, "patch", {})
    with pytest.raises(EngineError, match="takes no changes"):
        send_request(tmp_path, "stop", {"lr_scale": 1.0})
    assert not (tmp_path / CONTROL_FILE).exists()


def test_concurrent_senders_never_interleave(tmp_path):
    def send_many() -> None:
        for i in range(100):
            send_request(tmp_path, "patch", {"eval_every": i + 1, "sample_every": -1})

    threads = [threading.Thread(target=send_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ch = ControlChannel(tmp_path)
    assert len(ch.poll(0)) == 400 and ch.rejected == []


def test_apply_patch_hot_and_cold():
    cfg = TrainConfig(depth=2, aspect_ratio=64, head_dim=64)
    new, msg = apply_patch(cfg, ControlRequest(kind="patch", changes={"depth": 4}))
    assert new is None and "not hot-patchable: depth" in msg
    new, msg = apply_patch(cfg, ControlRequest(kind="patch", changes={"lr_scale": 0.5, "eval_every": 10}))
    assert new is not None and new.lr_scale == 0.5 and new.eval_every == 10 and cfg.lr_scale == 1.0
    assert "lr_scale: 1.0 -> 0.5" in msg
    new, msg = apply_patch(cfg, ControlRequest(kind="patch", changes={"lr_scale": -1}))
    assert new is None and "lr_scale" in msg
    new, msg = ControlChannel.apply_patch(cfg, ControlRequest(kind="stop"))
    assert new is None and "not a patch" in msg


def test_ack_carries_the_request_id():
    req = ControlRequest(kind="patch", changes={"lr_scale": 0.5})
    ack = req.ack(True, "applied", step=3, applied=req.changes)
    assert (ack.request_id, ack.kind, ack.ok, ack.step) == (req.id, "patch", True, 3)
    assert ack.applied == {"lr_scale": 0.5}


def test_multi_rank_without_process_group_is_an_error(tmp_path):
    ch = ControlChannel(tmp_path, SimpleNamespace(rank=0, world_size=2))
    with pytest.raises(EngineError, match="not initialized"):
        ch.poll(0)


# -----------------------------------------------------------------------------
# two gloo ranks: only rank 0 reads the file, both act on the same requests at the same step


def _gloo_worker(rank: int, run_dir: str, store: str) -> None:
    import torch
    import torch.distributed as dist

    from engine.common import DistInfo

    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        info = DistInfo(ddp=True, rank=rank, local_rank=rank, world_size=2, device=torch.device("cpu"))
        # rank 1 is pointed at an empty dir: whatever it gets can only have come through the broadcast
        ch = ControlChannel(run_dir if rank == 0 else f"{run_dir}/rank1-has-no-file", info)
        seen = []
        for step in range(6):
            if rank == 0 and step == 3:
                send_request(run_dir, "patch", {"lr_scale": 0.25})
            seen += [[step, r.id, r.kind, r.changes] for r in ch.poll(step)]
            seen += [[step, a.request_id, "rejected", {}] for a in ch.rejected]
        with open(f"{run_dir}/seen{rank}.json", "w") as f:
            json.dump(seen, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # a real multi-process run: 10-30 s on a busy 2-core machine
def test_two_gloo_ranks_get_the_same_requests_at_the_same_step(tmp_path):
    mp = pytest.importorskip("torch.multiprocessing")
    first = send_request(tmp_path, "save_now")
    with open(tmp_path / CONTROL_FILE, "a") as f:
        f.write("{broken\n")
    mp.spawn(_gloo_worker, args=(str(tmp_path), str(tmp_path / "store")), nprocs=2)
    seen0 = json.loads((tmp_path / "seen0.json").read_text())
    seen1 = json.loads((tmp_path / "seen1.json").read_text())
    requests0 = [s for s in seen0 if s[2] != "rejected"]
    assert [(s[0], s[2]) for s in requests0] == [(0, "save_now"), (3, "patch")]
    assert requests0[0][1] == first and requests0[1][3] == {"lr_scale": 0.25}
    assert seen1 == requests0  # same requests, same steps; rejections stay on rank 0
    assert [(s[0], s[2]) for s in seen0 if s[2] == "rejected"] == [(0, "rejected")]
