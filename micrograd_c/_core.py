"""The one module that imports the compiled graph core.

Every C call that can fail returns a status below zero; `error` turns it into the Python
exception that Python's own float arithmetic (or micrograd) would raise, in this one place.
"""

from __future__ import annotations

from micrograd_c._graph import ffi, lib

__all__ = ["ffi", "lib", "error", "check", "get_text", "set_text"]

_EXCEPTION_TYPES: dict[int, type[Exception]] = {
    lib.MG_ERR_NOMEM: MemoryError,
    lib.MG_ERR_NODE_LIMIT: MemoryError,
    lib.MG_ERR_BAD_HANDLE: ValueError,
    lib.MG_ERR_BAD_ARGUMENT: ValueError,
    lib.MG_ERR_ZERO_POWER: ZeroDivisionError,
    lib.MG_ERR_POW_RANGE: OverflowError,
    lib.MG_ERR_COMPLEX_POWER: ValueError,
    lib.MG_ERR_EXP_RANGE: OverflowError,
}


def error(status: int) -> Exception:
    """The exception for a negative status code from the C core."""
    message = ffi.string(lib.mg_status_message(status)).decode()
    return _EXCEPTION_TYPES.get(status, RuntimeError)(message)


def check(status: int) -> int:
    """Returns `status` unchanged, or raises the exception it stands for."""
    if status < 0:
        raise error(status)
    return status


def get_text(handle: int, kind: int) -> str:
    """A node's label or hand-written op text ('' when it has none)."""
    size = 64
    while True:
        buf = ffi.new("char[]", size)
        length = check(lib.mg_get_text(handle, kind, buf, size))
        if length <= size:
            text: str = ffi.unpack(buf, length).decode("utf-8", "surrogatepass")
            return text
        size = length  # grew since we asked: ask again with room for all of it


def set_text(handle: int, kind: int, text: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    raw = text.encode("utf-8", "surrogatepass")
    check(lib.mg_set_text(handle, kind, raw, len(raw)))
