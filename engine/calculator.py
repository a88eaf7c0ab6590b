"""An in-process calculator tool: evaluates arithmetic expressions only, by walking their syntax tree.

RL samples thousands of tool calls; a sandboxed child per call (engine.execution, ~50 ms) would dominate a
CPU step, and arithmetic needs no sandbox when nothing but numbers and operators is ever evaluated: names,
calls, attributes and every other node are refused before anything runs.
"""

from __future__ import annotations

import ast
import operator

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_CHARS = 200
MAX_POW = 64  # exponents above this are refused: 9**9**9 would hang the process


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_POW:
            raise ValueError("exponent too large")
        return _BIN[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    raise ValueError("not arithmetic")


def calculator(code: str) -> str:
    """The value of an arithmetic expression as the REPL would print it, or a one-line `Error: …`."""
    text = code.strip().replace(",", "")  # 1,000 as a thousand, as people write it
    if not text or len(text) > MAX_CHARS:
        return "Error: empty or too long"
    try:
        value = _eval(ast.parse(text, mode="eval").body)
    except ZeroDivisionError:
        return "Error: division by zero"
    except (SyntaxError, ValueError, OverflowError, TypeError, RecursionError, MemoryError) as e:
        return f"Error: {type(e).__name__ if not isinstance(e, ValueError) else e}"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return repr(value)
