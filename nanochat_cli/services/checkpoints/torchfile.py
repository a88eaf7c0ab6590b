"""Is a torch.save file whole, and would a weights-only load take it? Answered without torch or unpickling.

A torch.save file is a zip whose `<name>/data.pkl` pickle describes the object and points at tensor data
records; the pickle is small, so reading its opcodes is cheap. A weights-only load (what the engine
uses) only accepts the globals torch allows for tensors and plain containers, and refuses the opcodes
that look globals up some other way. The same rules here keep a file that would be refused, a
`__reduce__` payload for one, from ever being listed as complete. The legacy (pre-zip) format is a
run of pickles followed by raw tensor data; its leading pickles are scanned the same way.
"""

from __future__ import annotations

import pickletools
import re
import zipfile
from _compat_pickle import IMPORT_MAPPING, NAME_MAPPING  # Python 2 names, as protocol 2 writes them
from pathlib import Path

# The globals torch's weights-only unpickler allows (torch/_weights_only_unpickler.py), as (module, name).
_ALLOWED = {
    ("collections", "OrderedDict"), ("collections", "Counter"), ("torch.nn.parameter", "Parameter"),
    ("torch.serialization", "_get_layout"), ("torch", "Size"), ("torch", "Tensor"), ("torch", "device"),
    ("_codecs", "encode"), ("builtins", "bytearray"), ("builtins", "set"), ("builtins", "complex"),
    ("torch._tensor", "_rebuild_from_type_v2"), ("torch.storage", "TypedStorage"),
    ("torch.storage", "UntypedStorage"),
    *(("torch._utils", f"_rebuild_{n}") for n in (
        "parameter", "parameter_with_state", "qtensor", "tensor", "tensor_v2", "tensor_v3", "sparse_tensor",
        "meta_tensor_no_storage", "nested_tensor", "wrapper_subclass", "device_tensor_from_numpy",
        "device_tensor_from_cpu_tensor")),
}
# torch.FloatStorage, torch.cuda.HalfTensor…: legacy storage and tensor classes
_CLASS_RE = re.compile(r"^[A-Z][A-Za-z0-9]*(?:Storage|Tensor)$")
# torch.float32, torch.bfloat16, torch.uint8, torch.per_tensor_affine…: dtypes and quantization schemes
_DTYPE_RE = re.compile(r"^(?:u?int\d+|float\d*(?:_\w+)?|bfloat16|complex\d*|bool|half|double|long|int|short|"
                       r"cfloat|cdouble|chalf|q(?:u?int\w+)|bits\w+|per_(?:tensor|channel)_\w+)$")
# opcodes that find a global other than by GLOBAL: the weights-only unpickler refuses them
_REFUSED_OPCODES = {"STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4"}
_MAX_PICKLE_BYTES = 256 << 20  # a data.pkl holds structure only; anything bigger is not a checkpoint
_LEGACY_PICKLES = 5  # magic number, protocol, sys info, the object, the storage keys


def global_allowed(module: str, name: str) -> bool:
    if (module, name) in NAME_MAPPING:  # the same renaming the unpickler applies
        module, name = NAME_MAPPING[(module, name)]
    elif module in IMPORT_MAPPING:
        module = IMPORT_MAPPING[module]
    if (module, name) in _ALLOWED:
        return True
    if module in ("torch", "torch.cuda") and _CLASS_RE.match(name):
        return True
    return module == "torch" and bool(_DTYPE_RE.match(name))


def pickle_problem(ops) -> str | None:
    """What a weights-only load would refuse in a pickle's opcodes (pickletools.genops output); None if nothing."""
    for op, arg, _pos in ops:
        if op.name in _REFUSED_OPCODES:
            return f"it uses the pickle opcode {op.name}"
        if op.name == "GLOBAL":
            module, _, name = str(arg).partition(" ")
            if not global_allowed(module, name):
                return f"it references {module}.{name}"
    return None


def check_torch_file(path: Path) -> str | None:
    """None when `path` looks like a whole torch.save file a weights-only load accepts; else what is wrong."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        return f"{path.name} is unreadable ({e.strerror})"
    if size == 0:
        return f"{path.name} is empty"
    if head[:2] == b"PK":
        return _check_zip(path, size)
    if head[:1] == b"\x80":
        return _check_legacy(path)
    return f"{path.name} is not a torch checkpoint"


def _refused(path: Path, why: str) -> str:
    return f"{path.name} is refused: {why}, which a weights-only load does not allow (loading it could run code)"


def _check_zip(path: Path, size: int) -> str | None:
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            pickles = [i for i in infos if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1]
            if len(pickles) != 1:
                return f"{path.name} is not a torch checkpoint (no data.pkl)"
            if any(i.header_offset + i.compress_size > size for i in infos):
                return f"{path.name} is truncated (entries run past its end)"
            if pickles[0].file_size > _MAX_PICKLE_BYTES:
                return f"{path.name} is not a torch checkpoint (its data.pkl is {pickles[0].file_size} bytes)"
            data = z.read(pickles[0])
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, RuntimeError, NotImplementedError):
        return f"{path.name} is truncated or damaged (its zip directory or data.pkl cannot be read)"
    try:
        problem = pickle_problem(pickletools.genops(data))
    except (ValueError, EOFError):  # genops: an unknown opcode or a cut-off argument
        return f"{path.name} is damaged (its data.pkl is not a valid pickle)"
    return _refused(path, problem) if problem else None


def _check_legacy(path: Path) -> str | None:
    try:
        with open(path, "rb") as f:
            for _ in range(_LEGACY_PICKLES):
                problem = pickle_problem(pickletools.genops(f))
                if problem:
                    return _refused(path, problem)
    except (ValueError, EOFError, OSError):
        return f"{path.name} is damaged (not a valid legacy torch file)"
    return None
