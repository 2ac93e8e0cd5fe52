"""The one module that imports the compiled graph core.

Every C call that can fail returns a status below zero; `error` turns it into the Python
exception that Python's own float arithmetic (or micrograd) would raise, in this one place.
"""

from __future__ import annotations

from typing import TypeVar

from micrograd_c._graph import ffi, lib

__all__ = ["ffi", "lib", "error", "check", "get_text", "set_text"]

# Every status the C core can return (`enum mg_status` in csrc/graph.h) and what it becomes in
# Python: the exception micrograd's float arithmetic would raise, and its message.  This is the
# one table: C returns only the code.  A new status code is one row here (test_core.py checks
# that every MG_ERR_ of the header has a row).
_ERRORS: dict[int, tuple[type[Exception], str]] = {
    lib.MG_ERR_NOMEM: (MemoryError, "out of memory for the graph arena"),
    lib.MG_ERR_NODE_LIMIT: (
        MemoryError,
        "the graph holds as many live nodes as it can (the node limit)",
    ),
    lib.MG_ERR_BAD_HANDLE: (ValueError, "this Value's handle is not live (was it copied by hand?)"),
    lib.MG_ERR_BAD_ARGUMENT: (ValueError, "bad argument to the graph core"),
    lib.MG_ERR_ZERO_POWER: (ZeroDivisionError, "0.0 cannot be raised to a negative power"),
    lib.MG_ERR_POW_RANGE: (OverflowError, "(34, 'Numerical result out of range')"),  # float_pow's
    lib.MG_ERR_COMPLEX_POWER: (
        ValueError,
        "a negative number raised to a fractional power is complex, "
        "and Value holds only real numbers",
    ),
    lib.MG_ERR_EXP_RANGE: (OverflowError, "math range error"),  # math.exp's
}


def error(status: float) -> Exception:
    """The exception for a negative status code from the C core (an int, or the double that a
    call making a node returns)."""
    status = int(status)
    kind, message = _ERRORS.get(status, (RuntimeError, f"unknown graph core status {status}"))
    return kind(message)


# A status (an int), or a handle: the double a call making a node returns.
_Status = TypeVar("_Status", int, float)


def check(status: _Status) -> _Status:
    """Returns `status` unchanged, or raises the exception it stands for."""
    if status < 0:
        raise error(status)
    return status


def get_text(handle: float, kind: int) -> str:
    """A node's label or hand-written op text ('' when it has none)."""
    size = 64
    while True:
        buf = ffi.new("char[]", size)
        length = check(lib.mg_get_text(handle, kind, buf, size))
        if length <= size:
            text: str = ffi.unpack(buf, length).decode("utf-8", "surrogatepass")
            return text
        size = length  # grew since we asked: ask again with room for all of it


def set_text(handle: float, kind: int, text: str) -> None:
    if not isinstance(text, str):
        raise TypeError(f"expected a str, got {type(text).__name__}")
    if len(text) > _MAX_TEXT:  # (checked first too: encoding a huge text takes a while)
        raise ValueError(
            f"a label (or op text) of {len(text)} characters is too long: "
            f"at most {_MAX_TEXT} bytes of UTF-8"
        )
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) > _MAX_TEXT:
        raise ValueError(
            f"a label (or op text) of {len(raw)} bytes of UTF-8 is too long: at most {_MAX_TEXT}"
        )
    check(lib.mg_set_text(handle, kind, raw, len(raw)))


_MAX_TEXT = 2**31 - 1  # the arena keeps text lengths in 32 bits
