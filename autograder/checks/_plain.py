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
from typing import Any

import torch

SCALARS = (bool, int, float, str, type(None))
#: the most tensor elements one reply may carry (a probe sends small test outputs, never data sets)
MAX_ELEMENTS = 20_000_000
MAX_DEPTH = 12
MARKERS = ("__opaque__", "__ndarray__", "__numpy__", "__dtype__", "__device__")


class PlainDataError(ValueError):
    """The other side sent something that is not plain data."""


def qualname(cls: type) -> str:
    """``module.QualName`` of a class, e.g. ``torch.nn.modules.conv.Conv2d``."""
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', getattr(cls, '__name__', '?'))}"


def to_plain(value: Any, _depth: int = 0) -> Any:
    """Plain-data copy of ``value`` (probe side): exact types only, everything else a marker."""
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
        return t(to_plain(v, _depth + 1) for v in value)
    if t is torch.Size:
        return tuple(int(v) for v in value)
    if t is dict:
        if all(type(k) is str for k in value):
            return {k: to_plain(v, _depth + 1) for k, v in value.items()}
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


def validate(data: Any) -> Any:
    """Raise PlainDataError unless ``data`` is plain data by exact type; return it."""
    total = [0]

    def walk(v: Any, depth: int) -> None:
        if depth > MAX_DEPTH + 2:
            raise PlainDataError("nested too deeply")
        t = type(v)
        if t in SCALARS:
            return
        if t is torch.Tensor:
            total[0] += v.numel()
            if total[0] > MAX_ELEMENTS:
                raise PlainDataError("too many tensor elements")
            return
        if t is list or t is tuple:
            for x in v:
                walk(x, depth + 1)
            return
        if t is dict:
            for k, x in v.items():
                if type(k) is not str:
                    raise PlainDataError(f"a dict key of type {type(k).__name__}")
                walk(x, depth + 1)
            return
        raise PlainDataError(f"a value of type {qualname(t)}")

    walk(data, 0)
    return data


def dumps(data: Any) -> bytes:
    """Serialise plain data (``to_plain`` output) with ``torch.save``."""
    buf = io.BytesIO()
    torch.save(data, buf)
    return buf.getvalue()


def loads(blob: bytes) -> Any:
    """Read data written by ``dumps`` without running code (``weights_only=True``), then ``validate`` it."""
    try:
        data = torch.load(io.BytesIO(blob), weights_only=True, map_location="cpu")
    except Exception as err:  # noqa: BLE001 - anything unreadable is a protocol violation
        raise PlainDataError(f"unreadable reply ({type(err).__name__})") from None
    return validate(data)
