"""micrograd_c._core: the one table of C status codes and the exceptions they become."""

import re

import pytest

from micrograd_c import _core
from micrograd_c._core import check, error, ffi, get_text, lib
from micrograd_c.engine import Value

STATUS_CODES = ffi.typeof("enum mg_status").relements  # every code graph.h declares


def test_every_error_code_of_the_header_has_one_row():
    declared = {code for name, code in STATUS_CODES.items() if name.startswith("MG_ERR_")}
    assert declared, "graph.h declares no MG_ERR_ codes?"
    assert set(_core._ERRORS) == declared
    assert all(code < 0 for code in declared) and STATUS_CODES["MG_OK"] == 0


def test_each_code_has_its_own_message():
    messages = [message for _, message in _core._ERRORS.values()]
    assert all(messages) and len(set(messages)) == len(messages)


@pytest.mark.parametrize("name", sorted(n for n in STATUS_CODES if n.startswith("MG_ERR_")))
def test_error_is_the_tables_exception_with_its_message(name):
    kind, message = _core._ERRORS[STATUS_CODES[name]]
    exc = error(STATUS_CODES[name])
    assert type(exc) is kind and str(exc) == message
    with pytest.raises(kind, match="^" + re.escape(message) + "$"):
        check(STATUS_CODES[name])


def test_an_unknown_code_is_a_runtime_error_naming_it():
    with pytest.raises(RuntimeError, match="-99"):
        check(-99)


def test_check_passes_success_through():
    assert check(0) == 0 and check(7) == 7


def text_of_kind(v: Value, kind: int) -> str:
    return get_text(v._h, kind)  # (v, not a temporary: the handle must be live)


# The codes reached through the public API raise what micrograd's float arithmetic raises.
REACHED = [
    ("MG_ERR_ZERO_POWER", ZeroDivisionError, lambda: Value(0.0) ** -1),
    ("MG_ERR_POW_RANGE", OverflowError, lambda: Value(10.0) ** 400),
    ("MG_ERR_COMPLEX_POWER", ValueError, lambda: Value(-8.0) ** 0.5),
    ("MG_ERR_EXP_RANGE", OverflowError, lambda: Value(1000.0).exp()),
    ("MG_ERR_BAD_ARGUMENT", ValueError, lambda: text_of_kind(Value(1.0), 7)),  # no kind 7
    ("MG_ERR_BAD_HANDLE", ValueError, lambda: get_text(-1, lib.MG_TEXT_LABEL)),
]


@pytest.mark.parametrize("name, kind, attempt", REACHED, ids=[r[0] for r in REACHED])
def test_codes_reached_from_python(name, kind, attempt):
    with pytest.raises(kind) as info:
        attempt()
    assert str(info.value) == _core._ERRORS[STATUS_CODES[name]][1]
