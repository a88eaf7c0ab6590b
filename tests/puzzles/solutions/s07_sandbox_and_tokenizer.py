"""Reference solution of puzzle 07 (chat rendering + execute_code): written for the tests, not a copy of
the engine. The sandbox is the learner-level one the puzzle asks for: a fresh `python -I -S` in its own
session and empty folder, resource limits, an audit hook that refuses writes outside its folder, and
the whole process group killed when it ends."""

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass


def render_conversation(tokenizer, conversation, max_tokens=2048):
    messages = list(conversation["messages"])
    if messages[0]["role"] == "system":
        merged = dict(messages[1])
        merged["content"] = messages[0]["content"] + "\n\n" + messages[1]["content"]
        messages = [merged] + messages[2:]
    sp = tokenizer.encode_special
    ids, mask = [tokenizer.get_bos_token_id()], [0]

    def put(tokens, learn):
        ids.extend(tokens)
        mask.extend([learn] * len(tokens))

    for message in messages:
        if message["role"] == "user":
            put([sp("<|user_start|>"), *tokenizer.encode(message["content"]), sp("<|user_end|>")], 0)
            continue
        put([sp("<|assistant_start|>")], 0)
        content = message["content"]
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
        for part in parts:
            if part["type"] == "text":
                put(tokenizer.encode(part["text"]), 1)
            elif part["type"] == "python":
                put([sp("<|python_start|>"), *tokenizer.encode(part["text"]), sp("<|python_end|>")], 1)
            else:
                put([sp("<|output_start|>"), *tokenizer.encode(part["text"]), sp("<|output_end|>")], 0)
        put([sp("<|assistant_end|>")], 1)
    return ids[:max_tokens], mask[:max_tokens]


def render_for_completion(tokenizer, conversation):
    ids, _ = render_conversation(tokenizer, {"messages": conversation["messages"][:-1]}, max_tokens=10**9)
    return ids + [tokenizer.encode_special("<|assistant_start|>")]


@dataclass
class Result:
    status: str
    stdout: str
    stderr: str


# Runs in the child before the user's code: refuse changes outside the working folder and native code.
GUARD = r'''
import os as _os, sys as _sys
_HOME = _os.path.realpath(_os.getcwd())
_WRITE = _os.O_WRONLY | _os.O_RDWR | _os.O_CREAT | _os.O_TRUNC | _os.O_APPEND

def _inside(path):
    try:
        return _os.path.realpath(_os.fsdecode(path)).startswith(_HOME + _os.sep)
    except (TypeError, ValueError):
        return False

def _guard(event, args):
    if event == "open" and args[0] is not None and not isinstance(args[0], int):
        writes = (args[1] and any(c in args[1] for c in "wax+")) or (args[2] & _WRITE)
        if writes and not _inside(args[0]):
            raise PermissionError("sandbox: blocked: writing outside the sandbox folder")
    elif event in ("os.remove", "os.rmdir", "os.rename", "os.truncate", "os.chmod", "os.chown", "os.link",
                   "os.symlink", "shutil.rmtree", "os.unlink", "os.replace"):
        if not _inside(args[0]) or (event in ("os.rename", "os.link", "os.symlink") and not _inside(args[1])):
            raise PermissionError(f"sandbox: blocked: {event} outside the sandbox folder")
    elif event == "import" and args[0] in ("ctypes", "_ctypes"):
        raise PermissionError("sandbox: blocked: native code")
    elif event in ("ctypes.dlopen", "os.exec", "os.posix_spawn", "subprocess.Popen", "os.kill", "os.killpg"):
        raise PermissionError(f"sandbox: blocked: {event}")

_sys.addaudithook(_guard)
del _guard
'''


def execute_code(code, timeout=5.0, memory_bytes=256 * 2**20, max_output_bytes=64 * 1024):
    workdir = tempfile.mkdtemp(prefix="puzzle-sandbox-")
    logs = tempfile.mkdtemp(prefix="puzzle-sandbox-logs-")

    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_CPU, (int(timeout) + 1, int(timeout) + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_output_bytes * 4, max_output_bytes * 4))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    try:
        with open(os.path.join(logs, "out"), "wb+") as out, open(os.path.join(logs, "err"), "wb+") as err:
            proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", GUARD + "\n" + code], cwd=workdir,
                                    env={"PATH": "/usr/bin:/bin"}, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                    start_new_session=True, preexec_fn=limits, close_fds=True)
            timed_out = False
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the child and everything it forked
            except ProcessLookupError:
                pass
            proc.wait()
            out.seek(0)
            err.seek(0)
            stdout = out.read(max_output_bytes).decode("utf-8", "replace")
            stderr = err.read(max_output_bytes).decode("utf-8", "replace")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)
    if timed_out:
        status = "timeout"
    elif proc.returncode == 0:
        status = "ok"
    elif "MemoryError" in stderr:
        status = "memory"
    elif "sandbox: blocked" in stderr:
        status = "blocked"
    else:
        status = "error"
    return Result(status, stdout, stderr)
