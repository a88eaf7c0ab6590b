"""A lossless WGSL lexer: `lex(source)` returns tokens whose texts concatenate back to the source exactly.

Every character lands in exactly one token, whitespace and comments included, so a vocabulary built on
these tokens can round-trip any shader. Three passes:
1. scan: trivia (whitespace, comments), identifiers, attributes (`@group`), numbers, and every other
   character as a one-character token;
2. template discovery (the WGSL spec's algorithm, simplified): which `<` / `>` open and close a template
   list (`array<vec4<f32>>` closes twice, it is not a shift);
3. merge: adjacent operator characters into operators (`>>=`, `->`, `&&` ...), never across a template
   delimiter, and a parametrised type whose argument is a scalar (`vec4<f32>`, `mat4x4<f32>`,
   `texture_2d<f32>`, `array<u32>`) into one `type` token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEYWORDS = frozenset("""
alias break case const const_assert continue continuing default diagnostic discard else enable false fn for if
let loop override requires return struct switch true var while
""".split())

SCALAR_TYPES = ("bool", "f16", "f32", "i32", "u32")
_SHORT_SUFFIX = ("f", "h", "i", "u")
TYPE_GENERATORS = frozenset(
    ["vec2", "vec3", "vec4", "array", "atomic", "ptr"]
    + [f"mat{c}x{r}" for c in (2, 3, 4) for r in (2, 3, 4)]
    + ["texture_1d", "texture_2d", "texture_2d_array", "texture_3d", "texture_cube", "texture_cube_array",
       "texture_multisampled_2d", "texture_storage_1d", "texture_storage_2d", "texture_storage_2d_array",
       "texture_storage_3d"]
)
TYPES = frozenset(
    list(SCALAR_TYPES) + list(TYPE_GENERATORS)
    + [f"vec{n}{s}" for n in (2, 3, 4) for s in _SHORT_SUFFIX]
    + [f"mat{c}x{r}{s}" for c in (2, 3, 4) for r in (2, 3, 4) for s in ("f", "h")]
    + ["sampler", "sampler_comparison", "texture_depth_2d", "texture_depth_2d_array", "texture_depth_cube",
       "texture_depth_cube_array", "texture_depth_multisampled_2d", "texture_external"]
)
# Predeclared enumerants: address spaces, access modes, texel formats' usual suspects.
ENUMERANTS = frozenset("""
function private workgroup uniform storage read write read_write
rgba8unorm rgba8snorm rgba8uint rgba8sint rgba16float rgba32float r32float r32uint r32sint rg32float
""".split())
BUILTIN_VALUES = frozenset("""
global_invocation_id local_invocation_id local_invocation_index workgroup_id num_workgroups
vertex_index instance_index position front_facing frag_depth sample_index sample_mask
""".split())
BUILTIN_FUNCTIONS = frozenset("""
abs acos acosh all any arrayLength asin asinh atan atan2 atanh bitcast ceil clamp cos cosh countLeadingZeros
countOneBits countTrailingZeros cross degrees determinant distance dot exp exp2 extractBits faceForward
firstLeadingBit firstTrailingBit floor fma fract frexp insertBits inverseSqrt ldexp length log log2 max min mix
modf normalize pow quantizeToF16 radians reflect refract reverseBits round saturate select sign sin sinh
smoothstep sqrt step tan tanh transpose trunc
atomicLoad atomicStore atomicAdd atomicSub atomicMax atomicMin atomicAnd atomicOr atomicXor atomicExchange
atomicCompareExchangeWeak storageBarrier workgroupBarrier workgroupUniformLoad textureBarrier
textureDimensions textureGather textureGatherCompare textureLoad textureNumLayers textureNumLevels
textureNumSamples textureSample textureSampleBias textureSampleCompare textureSampleCompareLevel
textureSampleGrad textureSampleLevel textureSampleBaseClampToEdge textureStore
pack4x8snorm pack4x8unorm pack2x16snorm pack2x16unorm pack2x16float unpack4x8snorm unpack4x8unorm
unpack2x16snorm unpack2x16unorm unpack2x16float dpdx dpdy fwidth
""".split())
ATTRIBUTES = frozenset("""
align binding builtin compute const diagnostic fragment group id interpolate invariant location must_use size
vertex workgroup_size
""".split())

# Longest first: merging picks the longest operator that the adjacent characters spell.
OPERATORS = (">>=", "<<=", "->", "&&", "||", "==", "!=", "<=", ">=", "<<", ">>", "++", "--", "+=", "-=", "*=",
             "/=", "%=", "&=", "|=", "^=")
_OP_CHARS = frozenset("".join(OPERATORS))
_OPS_BY_FIRST = {c: [op for op in OPERATORS if op[0] == c] for c in _OP_CHARS}  # longest first, as OPERATORS

# Token kinds.
WHITESPACE, COMMENT, IDENT, KEYWORD, TYPE, BUILTIN, ATTRIBUTE, NUMBER, OPERATOR, PUNCT = (
    "whitespace", "comment", "ident", "keyword", "type", "builtin", "attribute", "number", "operator", "punct")
ENUMERANT, TEMPLATE_START, TEMPLATE_END, ERROR = "enumerant", "template_start", "template_end", "error"
TRIVIA = frozenset({WHITESPACE, COMMENT})

_WS = re.compile(r"[ \t\n\r\v\f\u0085\u200e\u200f\u2028\u2029]+")
_IDENT = re.compile(r"[^\W\d]\w*")
_NUMBER = re.compile(r"""
    0[xX](?:[0-9a-fA-F]*\.[0-9a-fA-F]+|[0-9a-fA-F]+\.?)[pP][+-]?[0-9]+[fh]?   # hex float with exponent
  | 0[xX](?:[0-9a-fA-F]*\.[0-9a-fA-F]+|[0-9a-fA-F]+\.[0-9a-fA-F]*)          # hex float
  | 0[xX][0-9a-fA-F]+[iu]?                                                  # hex int
  | (?:[0-9]*\.[0-9]+|[0-9]+\.[0-9]*)(?:[eE][+-]?[0-9]+)?[fh]?              # decimal float
  | [0-9]+[eE][+-]?[0-9]+[fh]?                                              # decimal float, exponent only
  | (?:0|[1-9][0-9]*)[iufh]?                                                # int (or 1f / 2h)
  | [0-9]                                                                   # a lone digit (e.g. the 1 of 01)
""", re.VERBOSE)
_TEMPLATE_SCAN_LIMIT = 256  # tokens: a template list longer than this is not one (keeps the pass linear)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    start: int  # offset in the source, in characters

    @property
    def end(self) -> int:
        return self.start + len(self.text)


def _word_kind(word: str) -> str:
    if word in KEYWORDS:
        return KEYWORD
    if word in TYPES:
        return TYPE
    if word in BUILTIN_FUNCTIONS:
        return BUILTIN
    if word in ENUMERANTS or word in BUILTIN_VALUES:  # predeclared, not reserved: usable as names too
        return ENUMERANT
    return IDENT


def _scan(src: str) -> list[Token]:
    out: list[Token] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if m := _WS.match(src, i):
            out.append(Token(WHITESPACE, m.group(), i))
        elif src.startswith("//", i):
            j = i + 2
            while j < n and src[j] not in "\n\r\u2028\u2029\u0085\v\f":
                j += 1
            out.append(Token(COMMENT, src[i:j], i))
        elif src.startswith("/*", i):
            depth, j = 1, i + 2  # block comments nest in WGSL
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(Token(COMMENT if depth == 0 else ERROR, src[i:j], i))  # unterminated: an error token
        elif c.isdigit() or (c == "." and i + 1 < n and src[i + 1].isdigit()):
            m = _NUMBER.match(src, i)
            if m is None:  # a non-ASCII digit: not WGSL, kept as one character
                out.append(Token(ERROR, c, i))
            else:
                out.append(Token(NUMBER, m.group(), i))
        elif c == "@" and (m := _IDENT.match(src, i + 1)):
            out.append(Token(ATTRIBUTE, "@" + m.group(), i))
        elif m := _IDENT.match(src, i):
            word = m.group()
            out.append(Token(PUNCT if word == "_" else _word_kind(word), word, i))
        else:
            out.append(Token(PUNCT if c.isascii() and c.isprintable() else ERROR, c, i))
        i += len(out[-1].text)
    return out


def _discover_templates(toks: list[Token]) -> set[int]:
    """Indices of the `<` and `>` tokens that delimit template lists (WGSL spec, 'template list discovery')."""
    code = [k for k, t in enumerate(toks) if t.kind not in TRIVIA]
    delims: set[int] = set()

    def text(j: int) -> str:
        return toks[code[j]].text if j < len(code) else ""

    def adjacent(j: int) -> bool:  # code token j+1 starts where code token j ends (no trivia between)
        return j + 1 < len(code) and toks[code[j + 1]].start == toks[code[j]].end

    pending: list[tuple[int, int]] = []  # (code index of '<', nesting depth)
    depth = 0
    j = 0
    while j < len(code):
        t = toks[code[j]]
        s = t.text
        if t.kind in (IDENT, TYPE, BUILTIN, KEYWORD, ENUMERANT) and text(j + 1) == "<":
            lt = j + 1
            if adjacent(lt) and text(lt + 1) in ("<", "="):  # `a<<b`, `a<=b`: not a template
                j = lt + 2
                continue
            pending.append((lt, depth))
            j = lt + 1
            continue
        if s == ">":
            if pending and pending[-1][1] == depth:
                lt, _ = pending.pop()
                if j - lt <= _TEMPLATE_SCAN_LIMIT:
                    delims.update((code[lt], code[j]))
            elif adjacent(j) and text(j + 1) == "=":
                j += 1
        elif s in ("(", "["):
            depth += 1
        elif s in (")", "]"):
            while pending and pending[-1][1] >= depth:
                pending.pop()
            depth = max(0, depth - 1)
        elif s == "!" and adjacent(j) and text(j + 1) == "=":
            j += 1
        elif s == "=":
            if adjacent(j) and text(j + 1) == "=":
                j += 1
            else:  # an assignment ends every pending template list
                depth = 0
                pending.clear()
        elif s in (";", "{", ":"):
            depth = 0
            pending.clear()
        elif s in ("&", "|") and adjacent(j) and text(j + 1) == s:  # && and || end the lists at this depth
            while pending and pending[-1][1] >= depth:
                pending.pop()
            j += 1
        j += 1
    return delims


def _merge(src: str, toks: list[Token], delims: set[int]) -> list[Token]:
    out: list[Token] = []
    k, n = 0, len(toks)
    while k < n:
        t = toks[k]
        if k in delims:
            out.append(Token(TEMPLATE_START if t.text == "<" else TEMPLATE_END, t.text, t.start))
            k += 1
            continue
        if t.kind == PUNCT and t.text in _OP_CHARS:
            for op in _OPS_BY_FIRST[t.text]:  # longest first; every character must be a plain, adjacent punct
                m = len(op)
                if (src.startswith(op, t.start) and k + m <= n
                        and all(toks[k + q].kind == PUNCT and (k + q) not in delims for q in range(m))):
                    out.append(Token(OPERATOR, op, t.start))
                    k += m
                    break
            else:
                out.append(t)
                k += 1
            continue
        out.append(t)
        k += 1
    return _fuse_types(out)


def _fuse_types(toks: list[Token]) -> list[Token]:
    """`vec4` `<` `f32` `>` with nothing between -> one `vec4<f32>` type token."""
    out: list[Token] = []
    k, n = 0, len(toks)
    while k < n:
        t = toks[k]
        if (t.text in TYPE_GENERATORS and k + 3 < n and toks[k + 1].kind == TEMPLATE_START
                and toks[k + 2].text in SCALAR_TYPES and toks[k + 3].kind == TEMPLATE_END
                and toks[k + 3].end - t.start == sum(len(toks[k + q].text) for q in range(4))):
            out.append(Token(TYPE, "".join(toks[k + q].text for q in range(4)), t.start))
            k += 4
            continue
        out.append(t)
        k += 1
    return out


def lex(source: str) -> list[Token]:
    """Tokens of `source`; `"".join(t.text for t in lex(s)) == s` for every string."""
    toks = _scan(source)
    return _merge(source, toks, _discover_templates(toks))


def code_tokens(tokens: list[Token]) -> list[Token]:
    """The tokens that are not whitespace or comments."""
    return [t for t in tokens if t.kind not in TRIVIA]
