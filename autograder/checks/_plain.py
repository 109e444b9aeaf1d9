"""The only values that cross from the student's process to the judge: plain data, by exact type.

A probe runs where the student's code runs and may have been tampered with; what it returns is
turned into plain data here (``to_plain``, in the student's process), serialised with
``torch.save`` and read back in the grader with ``torch.load(weights_only=True)`` (no code is
unpickled) and ``validate``: every value must be *exactly* a ``bool``, ``int``, ``float``,
``str``, ``None``, ``torch.Tensor``, or a ``list``/``tuple``/``dict`` (str keys) of those. An
``int`` subclass whose ``==`` is always true, a tensor subclass, a numpy array: none of them
survives as itself. Values that are not plain become markers the judge can name in a message
(``{"__opaque__": "mymodule.MyInt"}``).
"""

from __future__ import annotations

import io
import zipfile
from typing import Any

import torch

SCALARS = (bool, int, float, str, type(None))
#: the most tensor elements one reply may carry (a probe sends small test outputs, never data sets)
MAX_ELEMENTS = 20_000_000
MAX_DEPTH = 12
#: the most values (containers, scalars, tensors) a reply may hold, counted along every path, so a
#: structure that shares one child many times (8 references nested 13 deep: 8^13 paths in a few
#: hundred bytes) fails after MAX_NODES steps instead of stalling whoever walks it next
MAX_NODES = 200_000
MARKERS = ("__opaque__", "__ndarray__", "__numpy__", "__dtype__", "__device__")


class PlainDataError(ValueError):
    """The other side sent something that is not plain data."""


def qualname(cls: type) -> str:
    """``module.QualName`` of a class, e.g. ``torch.nn.modules.conv.Conv2d``."""
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', getattr(cls, '__name__', '?'))}"


def to_plain(value: Any, _depth: int = 0, _budget: list[int] | None = None) -> Any:
    """Plain-data copy of ``value`` (probe side): exact types only, everything else a marker.

    At most MAX_NODES values along every path: a structure sharing one child many times becomes a
    marker instead of keeping the probe busy."""
    if _budget is None:
        budget = [MAX_NODES]
        out = to_plain(value, _depth, budget)
        return out if budget[0] >= 0 else {"__opaque__": f"more than {MAX_NODES} values"}
    _budget[0] -= 1
    if _budget[0] < 0:
        return {"__opaque__": "too many values"}
    t = type(value)
    if t in SCALARS:
        return value
    if _depth > MAX_DEPTH:
        return {"__opaque__": "too deeply nested"}
    if t is torch.Tensor or t is torch.nn.Parameter:
        if value.device.type == "meta":
            return {"__opaque__": "torch.Tensor on the meta device"}
        if value.is_sparse or value.layout != torch.strided:
            value = value.to_dense()
        return value.detach().to("cpu").clone()  # a Parameter's detach() is a plain Tensor
    if t is list or t is tuple:
        return t(to_plain(v, _depth + 1, _budget) for v in value)
    if t is torch.Size:
        return tuple(int(v) for v in value)
    if t is dict:
        if all(type(k) is str for k in value):
            return {k: to_plain(v, _depth + 1, _budget) for k, v in value.items()}
        return {"__opaque__": "dict with non-str keys"}
    if t is torch.dtype:
        return {"__dtype__": str(value)}
    if t is torch.device:
        return {"__device__": str(value)}
    if t.__module__ == "numpy":
        import numpy as np

        if t is np.ndarray and value.dtype.kind in "biuf":
            return {"__ndarray__": torch.from_numpy(np.array(value, copy=True))}
        if isinstance(value, np.generic) and value.dtype.kind in "biuf":
            return {"__numpy__": t.__name__, "value": value.item()}
    return {"__opaque__": qualname(t)}


def marker(value: Any) -> str | None:
    """The marker kind of a plain value (``"__opaque__"``, ``"__ndarray__"``, ...), else None."""
    if type(value) is dict and len(value) <= 2:
        for key in MARKERS:
            if key in value:
                return key
    return None


def type_name(value: Any) -> str:
    """What the student's code returned, for a message: ``int``, ``Tensor``, ``numpy.float64``, ``MyInt``."""
    kind = marker(value)
    if kind == "__opaque__":
        return str(value["__opaque__"]).rsplit(".", 1)[-1]
    if kind == "__ndarray__":
        return "numpy.ndarray"
    if kind == "__numpy__":
        return f"numpy.{value['__numpy__']}"
    if kind == "__dtype__":
        return "torch.dtype"
    if kind == "__device__":
        return "torch.device"
    return "Tensor" if type(value) is torch.Tensor else type(value).__name__


#: the most characters of text one reply may hold
MAX_TEXT_BYTES = 64 << 20
#: the largest pickle (the structure, tensors' data excluded) inside a serialised reply
MAX_PICKLE = 8 << 20
#: the largest serialised reply, and the most its tensors' data may unpack to
MAX_BLOB = 256 << 20


def validate(data: Any) -> Any:
    """Raise PlainDataError unless ``data`` is plain data by exact type, within budget; return it.

    The budget: depth, MAX_NODES values along every path, MAX_TEXT_BYTES of text, MAX_ELEMENTS
    tensor elements (a tensor referenced twice counted once, by id). Nothing else touches a reply
    before this has passed: a budget exceeded stops the walk at once."""
    nodes = text = elements = 0
    seen: set[int] = set()
    todo: list[tuple[Any, int]] = [(data, 0)]
    while todo:
        v, depth = todo.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise PlainDataError(f"more than {MAX_NODES} values (shared references are counted each time)")
        if depth > MAX_DEPTH + 2:
            raise PlainDataError("nested too deeply")
        t = type(v)
        if t is str:
            text += len(v)
            if text > MAX_TEXT_BYTES:
                raise PlainDataError("too much text")
            continue
        if t in SCALARS:
            continue
        if t is torch.Tensor:
            if id(v) not in seen:
                seen.add(id(v))
                elements += v.numel()
                if elements > MAX_ELEMENTS:
                    raise PlainDataError("too many tensor elements")
            continue
        if t is list or t is tuple:
            todo.extend((x, depth + 1) for x in v)
            continue
        if t is dict:
            for k, x in v.items():
                if type(k) is not str:
                    raise PlainDataError(f"a dict key of type {type(k).__name__}")
                text += len(k)
                todo.append((x, depth + 1))
            continue
        raise PlainDataError(f"a value of type {qualname(t)}")
    return data


def dumps(data: Any) -> bytes:
    """Serialise plain data (``to_plain`` output) with ``torch.save``."""
    buf = io.BytesIO()
    torch.save(data, buf)
    return buf.getvalue()


def _check_archive(blob: bytes) -> None:
    """Bound ``torch.load`` before it runs: a plain zip of stored (uncompressed) records whose sizes
    add up to at most the blob's, with a pickle of at most MAX_PICKLE bytes."""
    if len(blob) > MAX_BLOB:
        raise PlainDataError("reply too large")
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError):
        raise PlainDataError("unreadable reply (not a torch archive)") from None
    total = 0
    for info in infos:
        if info.compress_type != zipfile.ZIP_STORED:
            raise PlainDataError("a compressed record in the reply")
        total += info.file_size
        if info.filename.endswith(".pkl") and info.file_size > MAX_PICKLE:
            raise PlainDataError("reply structure too large")
    if total > len(blob):
        raise PlainDataError("reply records larger than the reply")


def loads(blob: bytes) -> Any:
    """Read data written by ``dumps`` without running code (``weights_only=True``), within the
    archive's bounds (``_check_archive``), then ``validate`` it."""
    _check_archive(blob)
    try:
        data = torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - anything unreadable is a protocol violation
        raise PlainDataError(f"unreadable reply ({type(err).__name__})") from None
    return validate(data)
