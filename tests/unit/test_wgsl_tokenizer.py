"""The WGSL lexer, the shader vocabulary and the joint BPE + WGSL token space (no GPU needed)."""

import pytest

from nanochat_plugins.wgsl import dataset, lexer
from nanochat_plugins.wgsl.errors import WgslError
from nanochat_plugins.wgsl.joint import SPECIALS, WGSL_END, WGSL_START, JointTokenizer, train_nl_bpe
from nanochat_plugins.wgsl.vocab import N_BYTES, VOCAB_FILE, WgslVocab

RECORDS = dataset.load()


@pytest.fixture(scope="module")
def vocab() -> WgslVocab:
    return WgslVocab.build(r.shader for r in RECORDS if r.split == "train")


@pytest.fixture(scope="module")
def joint(vocab) -> JointTokenizer:
    return JointTokenizer(train_nl_bpe([r.prompt for r in RECORDS if r.split == "train"], 512), vocab)


def kinds(src):
    return [(t.kind, t.text) for t in lexer.code_tokens(lexer.lex(src))]


def test_every_dataset_shader_round_trips_through_the_lexer_and_the_vocabulary(vocab):
    assert len(RECORDS) >= 300
    for r in RECORDS:  # the val and test shaders too, although the vocabulary never saw them
        assert "".join(t.text for t in lexer.lex(r.shader)) == r.shader, r.id
        assert vocab.decode(vocab.encode(r.shader)) == r.shader, r.id


@pytest.mark.parametrize("text", [
    "", " ", "\t\r\n\n    ", "fn main() {}", "/* unterminated", "/* a /* nested */ b */ x", "// no newline",
    "héllo wörld 日本 🎨 \x00\x07", "0x1.8p3f 1e-3h 0123 .5 1. 7u 0xFFu 1f", "a>>=b<<=c->d&&e||f!=g==h",
    "@ group(0)", "@@@ ### $$$ `~`", "\u2028\u2029\u0085\ufeff", "\udcff lone surrogate",
])
def test_any_text_round_trips_exactly(vocab, text):
    assert "".join(t.text for t in lexer.lex(text)) == text
    assert vocab.decode(vocab.encode(text)) == text


def test_types_attributes_literals_and_comments_are_tokens():
    src = ("@group(0) @binding(1) var<storage, read_write> m: array<mat4x4<f32>>;\n"
           "@compute @workgroup_size(8, 8, 1) fn main(@builtin(global_invocation_id) id: vec3<u32>) {\n"
           "  let t: texture_2d<f32>; let v = vec2<f32>(1.5e-3f, 0x1Fu); /* c /* d */ */ // line\n}")
    toks = kinds(src)
    for t in ("mat4x4<f32>", "vec3<u32>", "texture_2d<f32>", "vec2<f32>"):
        assert (lexer.TYPE, t) in toks
    for a in ("@group", "@binding", "@compute", "@workgroup_size", "@builtin"):
        assert (lexer.ATTRIBUTE, a) in toks
    assert (lexer.NUMBER, "1.5e-3f") in toks and (lexer.NUMBER, "0x1Fu") in toks
    assert (lexer.KEYWORD, "fn") in toks and (lexer.ENUMERANT, "read_write") in toks
    assert (lexer.BUILTIN, "global_invocation_id") not in toks  # a builtin value, not a function
    comments = [t.text for t in lexer.lex(src) if t.kind == lexer.COMMENT]
    assert comments == ["/* c /* d */ */", "// line"]


def test_template_lists_are_told_apart_from_comparisons_and_shifts():
    closes = [k for k, _ in kinds("var<private> a: array<vec4<f32>>;") if k == lexer.TEMPLATE_END]
    assert len(closes) == 2  # `>>` closing two lists: not a shift
    assert (lexer.OPERATOR, ">>") in kinds("let s = a >> 2u;")
    assert (lexer.OPERATOR, ">>=") in kinds("x >>= 1u;")
    assert lexer.TEMPLATE_START not in {k for k, _ in kinds("if (a<b && c>d) {}")}
    assert [t for k, t in kinds("let z = array<f32, 4>(1.0, 2.0, 3.0, 4.0);") if k.startswith("template")] == ["<", ">"]


def test_numbers_are_spelled_by_character_so_any_constant_can_be_copied(vocab):
    ids = vocab.encode("let k = 0.3746;")
    pieces = [vocab.id_to_token(i) for i in ids]
    assert ["0", ".", "3", "7", "4", "6"] == pieces[pieces.index("=") + 2:pieces.index(";")]


def test_the_vocabulary_saves_and_loads_and_refuses_a_stale_file(vocab, tmp_path):
    vocab.save(tmp_path)
    again = WgslVocab.load(tmp_path)
    assert again.tokens == vocab.tokens and again.fingerprint == vocab.fingerprint
    (tmp_path / VOCAB_FILE).write_text('{"format": 1, "base_size": 3, "fingerprint": "x", "learned": []}')
    with pytest.raises(WgslError, match="different lexer version"):
        WgslVocab.load(tmp_path)
    (tmp_path / VOCAB_FILE).write_bytes(b"\xff\xfe")
    with pytest.raises(WgslError, match="unreadable"):
        WgslVocab.load(tmp_path)
    with pytest.raises(WgslError, match="out of range"):
        vocab.decode([len(vocab)])


def test_a_pair_renders_in_one_token_space_with_the_loss_on_the_shader_only(joint):
    rec = RECORDS[0]
    ids, mask = joint.render_pair(rec.prompt, rec.shader)
    prompt_ids = joint.render_prompt(rec.prompt)
    assert ids[:len(prompt_ids)] == prompt_ids and prompt_ids[-1] == joint.special(WGSL_START)
    assert ids[0] == joint.bos_id and ids[-1] == joint.special(WGSL_END)
    assert len(mask) == len(ids)
    learned = [i for i, m in zip(ids, mask, strict=True) if m]
    assert learned == joint.encode_shader(rec.shader) + [joint.special(WGSL_END)]
    assert all(not m for i, m in zip(ids, mask, strict=True) if not joint.is_shader_id(i) and i != ids[-1])
    assert all(0 <= i < joint.vocab_size for i in ids)
    assert joint.decode_shader(ids) == rec.shader
    assert joint.decode(ids).startswith("<|bos|><|user_start|>" + rec.prompt + "<|user_end|>" + WGSL_START)
    # the spaces do not overlap: BPE ids, then WGSL ids, then the pair's specials
    assert joint.wgsl_offset == joint.nl.get_vocab_size()
    assert joint.vocab_size == joint.nl.get_vocab_size() + len(joint.wgsl) + len(SPECIALS)
    assert joint.is_shader_id(joint.wgsl_offset + N_BYTES) and not joint.is_shader_id(joint.special(WGSL_END))


def test_a_pair_longer_than_max_length_is_refused_not_cut(joint):
    rec = RECORDS[0]
    with pytest.raises(WgslError, match="tokenizer.max_length=10"):
        joint.render_pair(rec.prompt, rec.shader, max_tokens=10)


def test_the_joint_tokenizer_saves_and_loads_with_the_same_ids(joint, tmp_path):
    joint.save(tmp_path)
    again = JointTokenizer.load(tmp_path)
    assert again.fingerprint == joint.fingerprint and again.vocab_size == joint.vocab_size
    rec = RECORDS[-1]
    assert again.render_pair(rec.prompt, rec.shader) == joint.render_pair(rec.prompt, rec.shader)
    with pytest.raises(WgslError, match="not found"):
        JointTokenizer.load(tmp_path / "nowhere")


def test_the_default_config_builds_a_tokenizer_that_fits_every_shipped_pair():
    from nanochat_plugins.wgsl.config import GenerationConfig
    from nanochat_plugins.wgsl.joint import build

    cfg = GenerationConfig().tokenizer
    train = [r for r in RECORDS if r.split == "train"]
    tok = build([r.prompt for r in train], [r.shader for r in train],
                **cfg.model_dump(exclude={"tokenizer_type", "max_length"}))
    assert tok.nl.get_vocab_size() == cfg.nl_vocab_size
    for r in RECORDS:  # held-out pairs too: unseen identifiers fall back to pieces, never fail
        ids, _ = tok.render_pair(r.prompt, r.shader, max_tokens=cfg.max_length)
        assert tok.decode_shader(ids) == r.shader


def test_lowercase_prompts_and_bpe_errors():
    prompts = [r.prompt for r in RECORDS]
    bpe = train_nl_bpe(prompts, 300, lowercase=True)
    tok = JointTokenizer(bpe, WgslVocab(), lowercase=True)
    assert tok.encode_prompt("Write A Shader") == tok.encode_prompt("write a shader")
    with pytest.raises(WgslError, match="no prompts"):
        train_nl_bpe([], 300)
