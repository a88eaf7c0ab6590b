"""WGSL training pieces that need no adapter: the data source's options, packed pair batches (loss on the shader
only, exact resume), the tokenizer cache, constrained decoding (greedy = cached beam of one), the plugin's
telemetry source and registrations, and `wgsl train`'s TOML mapping and one-line errors."""

import json

import pytest
import torch

from engine.gpt import GPT, GPTConfig
from nanochat_cli.cli import main
from nanochat_cli.services.panels import register_builtins
from nanochat_cli.services.registry import Registry
from nanochat_plugins.wgsl import source, tui
from nanochat_plugins.wgsl.decode import ShaderModel
from nanochat_plugins.wgsl.errors import WgslError


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return source.make("samples=0", tmp_path_factory.mktemp("base"), 7)


def test_options_parse_and_reject_in_one_line():
    o = source.parse_options("samples=3; sample_split=test;per_family=20;run_timeout=2.5")
    assert (o.samples, o.sample_split, o.per_family, o.run_timeout) == (3, "test", 20, 2.5)
    for bad, words in [("nope=1", "expected key=value with key one of"), ("samples=x", "samples='x': not a int"),
                       ("sample_split=train", "use val or test"), ("samples=-1", "must be >= 0")]:
        with pytest.raises(WgslError, match=words) as e:
            source.parse_options(bad)
        assert "\n" not in str(e.value)


def test_batches_learn_only_shader_tokens_and_keep_pairs_whole(src):
    tok = src.tokenizer.joint
    x, y, state = next(src.loader("train", 3, 767, 0, 1, "cpu"))
    assert x.shape == y.shape == (3, 767)
    learned = y[y >= 0]
    assert len(learned) and all(tok.is_shader_id(i) or i == tok.special("<|wgsl_end|>") for i in learned.tolist())
    # every pair in a row starts with BOS and its shader ends with <|wgsl_end|> inside the row
    ends = (y == tok.special("<|wgsl_end|>")).sum().item()
    starts = (x == tok.special("<|wgsl_start|>")).sum().item()
    assert ends == starts == state["pos"] > 0
    assert len(src.tokenizer.token_bytes()) == src.tokenizer.get_vocab_size()


def test_loader_resumes_exactly_and_checks_its_state(src):
    a = src.loader("train", 2, 767, 1, 2, "cpu")
    first = [next(a) for _ in range(6)]
    b = src.loader("train", 2, 767, 1, 2, "cpu", state=first[2][2])
    for want in first[3:]:
        got = next(b)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]) and got[2] == want[2]
    with pytest.raises(WgslError, match="world_size was 2, now 4"):
        src.loader("train", 2, 767, 1, 4, "cpu", state=first[0][2])
    with pytest.raises(WgslError, match="raise model.max_seq_len to at least"):
        src.loader("train", 2, 127, 0, 1, "cpu")


def test_tokenizer_is_cached_by_its_inputs(src, tmp_path):
    again = source.make("samples=0", src.tokenizer.directory.parents[2], 7)
    assert again.tokenizer.directory == src.tokenizer.directory
    assert again.tokenizer.fingerprint == src.tokenizer.fingerprint


def test_greedy_is_a_beam_of_one_and_stays_on_the_shader_side(src):
    tok = src.tokenizer.joint
    torch.manual_seed(0)
    model = GPT(GPTConfig(sequence_len=256, vocab_size=tok.vocab_size, n_layer=2, n_head=2, n_kv_head=2, n_embd=64))
    model.init_weights()
    sm = ShaderModel(model, tok)
    prompt = "add two arrays"
    [greedy] = sm.beam(prompt, 1, max_new=12)
    ids = tok.render_prompt(prompt)  # reference: full forward each step, no cache
    ref = []
    with torch.no_grad():
        for _ in range(12):
            logits = model(torch.tensor([ids + ref]))[0, -1].float() + sm.allowed
            nxt = int(logits.argmax())
            if nxt == sm.end:
                break
            ref.append(nxt)
    assert greedy.ids == ref and all(tok.is_shader_id(i) for i in ref)
    beams = sm.beam(prompt, 3, max_new=12)
    assert len(beams) == 3 and len({tuple(b.ids) for b in beams}) == 3
    key = [(not b.finished, -b.score) for b in beams]  # finished first, each group best first
    assert key == sorted(key)
    samples = sm.sample(prompt, 2, temperature=1.0, seed=1, max_new=8)
    assert len(samples) == 2 and all(tok.is_shader_id(i) for s in samples for i in s.ids)


def test_telemetry_source_turns_plugin_events_into_rates(tmp_path):
    events = [{"event": "step", "step": 1, "loss": 2.0},
              {"event": "plugin", "plugin": "wgsl", "kind": "samples", "step": 100,
               "data": {"validity": 0.5, "correctness": 0.25, "n": 8}},
              {"event": "plugin", "plugin": "other", "kind": "samples", "step": 100, "data": {"validity": 1}},
              {"event": "plugin", "plugin": "wgsl", "kind": "samples", "step": 200,
               "data": {"validity": None, "correctness": None}}]
    (tmp_path / "telemetry.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events) + '{"event": "plu')
    s = tui.WgslSamplesSource(tmp_path)
    got = [(p.name, p.x, p.y) for p in s.read_available()]
    assert got == [("wgsl.validity", 100.0, 50.0), ("wgsl.correctness", 100.0, 25.0)]
    assert s.read_available() == []  # the partial last line waits for its newline


def test_plugin_registers_category_source_panels_and_layout():
    reg = Registry()
    register_builtins(reg)
    with reg.owned_by("wgsl"):
        tui.register(reg)
    assert ("category", "wgsl") in reg.owned("wgsl") and ("layout", "wgsl") in reg.owned("wgsl")
    assert {p.id for p in reg.panels()} >= {"wgsl_rates", "wgsl_stats", "progress"}
    assert "wgsl" in {e.name for e in reg.telemetry_sources()}
    rates = reg.panel("wgsl_rates")
    assert rates.thresholds.min == {"wgsl.validity": "wgsl.min_validity", "wgsl.correctness": "wgsl.min_correctness"}


def test_train_maps_the_toml_and_rejects_wrong_types(capsys, tmp_path):
    good = tmp_path / "wgsl_generation.toml"
    good.write_text("[model]\nnum_layers = 2\nd_model = 128\nnhead = 2\nmax_seq_len = 768\n"
                    "[training]\nbatch_size = 4\nnum_epochs = 2\ndevice = \"cpu\"\n[tokenizer]\nmax_length = 768\n")
    assert main(["wgsl", "train", "--config", str(good), "--dry-run", "--headless"]) == 0
    line = capsys.readouterr().out.strip()
    for part in ("-m nanochat_cli train --prefab wgsl-cpu --set", "model.depth=2", "model.aspect_ratio=64",
                 "model.head_dim=64", "training.total_batch_size=6144", "hardware.device=cpu",
                 f"data.data_source_options=config={good}", "--headless"):
        assert part in line
    bad = tmp_path / "bad.toml"
    bad.write_text('[training]\nbatch_size = "eight"\n')
    assert main(["wgsl", "train", "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"nanochat-cli: error: {bad}: training.batch_size: Input should be a valid integer "
                   "(got 'eight')")


def test_chat_mode_claims_wgsl_checkpoints_only(src, tmp_path):
    from nanochat_plugins.wgsl import chat_mode

    for name, tok_dir in [("wgsl", src.tokenizer.directory), ("text", tmp_path)]:
        ckpt = tmp_path / name
        ckpt.mkdir()
        (ckpt / "meta_000010.json").write_text(json.dumps({"tokenizer_dir": str(tok_dir)}))
        (ckpt / "model_000010.pt").write_bytes(b"")
    assert chat_mode.claims(tmp_path / "wgsl") and chat_mode.claims(tmp_path / "wgsl" / "model_000010.pt")
    assert not chat_mode.claims(tmp_path / "text") and not chat_mode.claims(tmp_path / "nowhere")
