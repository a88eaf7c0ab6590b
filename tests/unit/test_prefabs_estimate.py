"""Analytic size/FLOPs/horizon against the engine's real model, and the machine guardrails."""

from pathlib import Path

import pytest
import torch

from engine.config import TrainConfig
from engine.gpt import GPT, config_from_depth
from engine.train import horizon
from nanochat_cli.services.config.estimate import (
    flops_per_token,
    memory_per_device,
    num_steps,
    param_counts,
    shape_of,
)
from nanochat_cli.services.config.guardrails import GpuInfo, MachineInfo, check_machine, detect_machine
from nanochat_cli.services.config.prefabs import PrefabStore
from nanochat_cli.services.config.schema import check, to_engine_config

FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "nanochat-parity" / "d4-s128"
GB = 10 ** 9


def resolved(**kw):
    values, issues = check({k.replace("__", "."): v for k, v in kw.items()})
    assert issues == []
    return values


SHAPES = [  # depth, aspect, head_dim, seq, vocab, pattern, n_kv_head
    (4, 64, 64, 256, 4096, "SSSL", None),
    (5, 64, 64, 128, 320, "SL", None),  # odd depth: value embeds on even layers; vocab padded
    (6, 48, 64, 512, 8195, "L", 1),  # GQA, dim rounded up to a head multiple
    (32, 64, 128, 2048, 32768, "SSSL", 4),
]


@pytest.mark.parametrize("depth,aspect,hd,seq,vocab,pattern,kv", SHAPES)
def test_counts_match_the_engine_model(depth, aspect, hd, seq, vocab, pattern, kv):
    r = resolved(model__depth=depth, model__aspect_ratio=aspect, model__head_dim=hd, model__max_seq_len=seq,
                 model__vocab_size=vocab, model__window_pattern=pattern, model__n_kv_head=kv,
                 training__device_batch_size=1, training__total_batch_size=seq)
    with torch.device("meta"):
        model = GPT(config_from_depth(depth, aspect, hd, seq, vocab, pattern, kv))
    s = shape_of(r)
    counts = param_counts(s)
    assert counts["total"] == model.num_params()
    assert flops_per_token(s, counts) == model.estimate_flops()
    assert s.windows == tuple(model.window_sizes)
    assert num_steps(r, counts, model.estimate_flops()) == horizon(to_engine_config(r), model,
                                                                   model.estimate_flops())


def test_horizon_modes_match_the_engine():
    with torch.device("meta"):
        model = GPT(config_from_depth(4, 64, 64, 256, 4096))
    fpt = model.estimate_flops()
    for extra in ({"training__num_iterations": 77}, {"training__target_flops": 3e14},
                  {"training__target_param_data_ratio": 20.0}):
        r = resolved(model__depth=4, model__head_dim=64, model__max_seq_len=256, model__vocab_size=4096,
                     training__device_batch_size=8, training__total_batch_size=4096, **extra)
        counts = param_counts(shape_of(r))
        assert num_steps(r, counts, fpt) == horizon(TrainConfig(**to_engine_config(r).model_dump()), model, fpt)


@pytest.mark.skipif(not FIXTURE.is_dir(), reason="shared fixtures not present")
def test_counts_match_a_stock_nanochat_checkpoint():
    import json

    mc = json.loads((FIXTURE / "meta_000000.json").read_text())["model_config"]
    state = torch.load(FIXTURE / "model_000000.pt", map_location="cpu", weights_only=True)
    r = resolved(model__depth=mc["n_layer"], model__aspect_ratio=mc["n_embd"] // mc["n_layer"],
                 model__head_dim=mc["n_embd"] // mc["n_head"], model__max_seq_len=mc["sequence_len"],
                 model__vocab_size=mc["vocab_size"], model__window_pattern=mc["window_pattern"],
                 training__device_batch_size=1, training__total_batch_size=mc["sequence_len"])
    assert param_counts(shape_of(r))["total"] == sum(t.numel() for t in state.values())


def test_memory_grows_with_batch_and_device_dtype():
    r = resolved(model__depth=12, training__device_batch_size=32)
    s, c = shape_of(r), param_counts(shape_of(r))
    assert memory_per_device(r, s, c, "cuda", 8) < memory_per_device(r, s, c, "cuda", 32)
    assert memory_per_device(r, s, c, "cpu", 8) > memory_per_device(r, s, c, "cuda", 8)  # fp32 activations


CPU_BOX = MachineInfo(cpu_count=2, ram_total_bytes=16 * GB, ram_free_bytes=12 * GB)
H100 = GpuInfo(0, "NVIDIA H100 80GB HBM3", 85 * GB, 84 * GB, (9, 0))


@pytest.fixture
def store(tmp_path):
    return PrefabStore(user_dir=tmp_path / "u", auth_flags=lambda: {})


def test_cpu_tiny_fits_a_two_core_box(store):
    assert check_machine(store.resolve("cpu-tiny"), CPU_BOX) == []


def test_gpu_prefab_without_gpu_is_an_error_with_remedy(store):
    rails = check_machine(store.resolve("$10"), CPU_BOX)
    assert [g.level for g in rails] == ["error"]
    assert "needs 1 CUDA GPU" in rails[0].message and "cpu-tiny" in rails[0].remedy


def test_too_few_gpus_and_tight_memory(store):
    one_gpu = MachineInfo(16, 128 * GB, 100 * GB, (H100,))
    assert check_machine(store.resolve("$10"), one_gpu) == []
    rails = check_machine(store.resolve("$100"), one_gpu)
    assert rails[0].level == "error" and "nproc_per_node=8 but this machine has 1 GPU" in rails[0].message
    assert rails[0].remedy.startswith("set hardware.nproc_per_node=1")
    small = MachineInfo(16, 128 * GB, 100 * GB, (GpuInfo(0, "NVIDIA A10G", 24 * GB, 23 * GB, (8, 6)),))
    r = store.resolve("$10")
    (warn,) = check_machine(r, small)
    assert warn.level == "warn" and "per GPU" in warn.message and "23.0 GB free" in warn.message
    b = int(warn.remedy.split("device_batch_size=")[1].split()[0])
    s, c = shape_of(r), param_counts(shape_of(r))
    assert memory_per_device(r, s, c, "cuda", b) <= 23 * GB and r["training.total_batch_size"] % (b * 2048) == 0
    fp8 = store.resolve("$10", {"training.fp8": True})
    assert any(g.remedy == "set training.fp8=false" for g in check_machine(fp8, small))


def test_cpu_oversubscription_and_ram(store):
    r = store.resolve("cpu-tiny", {"hardware.nproc_per_node": 4, "training.total_batch_size": 8192})
    (warn,) = check_machine(r, CPU_BOX)
    assert "4 CPU processes on 2 cores" in warn.message and warn.remedy == "set hardware.nproc_per_node=2"
    tiny_ram = MachineInfo(2, GB, GB // 2)
    (warn,) = check_machine(store.resolve("cpu-tiny"), tiny_ram)
    assert "of RAM" in warn.message and "even device_batch_size=1 does not fit" in warn.remedy


def test_detect_machine_reads_this_box():
    m = detect_machine()
    assert m.cpu_count >= 1 and 0 < m.ram_free_bytes <= m.ram_total_bytes
    assert all(g.total_bytes >= g.free_bytes for g in m.gpus)
