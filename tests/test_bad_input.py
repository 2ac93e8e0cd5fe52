"""Bad input at every public entry point: the error micrograd (or Python's float arithmetic) gives,
and no damage: every Value built before keeps its data and grad, and once the failed attempt's
garbage is collected the arena holds exactly the handles and nodes it held before.

micrograd 0.1.0 is the reference wherever it raises too; where micrograd silently accepts
something a Value cannot hold (a str, a complex, an array) micrograd_c raises TypeError.
"""

from __future__ import annotations

import functools
import gc
import math
import random
from typing import Any, Callable

import numpy as np
import pytest
from micrograd.engine import Value as MValue
from micrograd.nn import MLP as MMLP

from micrograd_c._core import lib
from micrograd_c.engine import Value
from micrograd_c.nn import MLP

# numpy's strings (a column read with dtype=str) define __float__, which would parse them: they
# are refused as text all the same, as micrograd's arithmetic refuses them.
NOT_NUMBERS = [
    "1.5",
    b"1.5",
    bytearray(b"1"),
    np.str_("1.5"),
    np.bytes_(b"1.5"),
    None,
    [1.0],
    (1.0,),
    {},
    {1.0},
    object(),
    1j,
]
NOT_NUMBERS_IDS = [
    "str",
    "bytes",
    "bytearray",
    "numpy.str_",
    "numpy.bytes_",
    "None",
    "list",
    "tuple",
    "dict",
    "set",
    "object",
    "complex",
]
# What micrograd also refuses (it stores a str or a complex and computes with it).
REFUSED_BY_BOTH = [None, [1.0], {}, object()]
HUGE = [10**400, -(10**400), 2**1024]

# An exception raised in Value.__del__ (a half-built Value, say) fails the test it happens in.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


def settle() -> tuple[int, int]:
    """(handles, nodes) once every dropped Value and every unreachable node is gone."""
    gc.collect()
    assert lib.mg_collect() == 0
    return lib.mg_handle_count(), lib.mg_node_count()


def state(*values: Value) -> list[tuple[float, float, str]]:
    return [(v.data, v.grad, v.label) for v in values]


def same_float(a: float, b: float) -> bool:
    """Equal as floats, NaN included, and with the same sign for zeros."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


@pytest.fixture(scope="module", autouse=True)
def settled_module():
    settle()


@pytest.fixture
def witness():
    """A graph built before the test, [a, b, c]: it must come out of every failure untouched,
    and once the test's own Values are gone the arena must hold what it held before."""
    assert lib.mg_collect() == 0  # (no GC run: the last test's teardown ran one)
    before = lib.mg_handle_count(), lib.mg_node_count()
    a = Value(2.0, label="a")
    b = Value(-3.0)
    c = a * b + a**2
    c.label = "c"
    c.backward()
    expected = [(2.0, -3.0 + 4.0, "a"), (-3.0, 2.0, ""), (-2.0, 1.0, "c")]
    assert state(a, b, c) == expected
    graph = [a, b, c]  # a list, emptied below: pytest keeps what a fixture yields
    del a, b, c
    yield graph
    assert state(*graph) == expected
    assert {p.data for p in graph[2]._prev} == {-6.0, 4.0}
    graph.clear()
    assert settle() == before, "handles or nodes outlived the test's Values"


def raises_like_micrograd(build: Callable[[type], Any], expected: type[BaseException]) -> None:
    """build(micrograd's Value) and build(micrograd_c's Value) both raise `expected`."""
    for V in (MValue, Value):
        with pytest.raises(expected):
            build(V)


# -- Value(x) and the data/grad setters -------------------------------------------------------


@pytest.mark.parametrize("bad", NOT_NUMBERS, ids=NOT_NUMBERS_IDS)
def test_value_of_a_non_number_is_a_type_error(witness, bad):
    with pytest.raises(TypeError):
        Value(bad)
    with pytest.raises(TypeError):
        Value(bad, label="x")


@pytest.mark.parametrize("bad", NOT_NUMBERS, ids=NOT_NUMBERS_IDS)
@pytest.mark.parametrize("field", ["data", "grad"])
def test_setting_a_non_number_is_a_type_error_and_keeps_the_old_number(witness, bad, field):
    a, _, c = witness
    for v in (a, c):
        old = getattr(v, field)
        with pytest.raises(TypeError):
            setattr(v, field, bad)
        assert getattr(v, field) == old


@pytest.mark.parametrize("huge", HUGE)
def test_an_int_too_big_for_a_float_is_an_overflow_error(witness, huge):
    a, _, _ = witness
    with pytest.raises(OverflowError):
        Value(huge)
    with pytest.raises(OverflowError):
        a.data = huge
    with pytest.raises(OverflowError):
        a.grad = huge


def test_the_biggest_ints_a_float_holds_are_fine(witness):
    assert Value(2**1023).data == 2.0**1023
    assert Value(-(2**53) - 1).data == float(-(2**53) - 1)  # rounds as float() does


@pytest.mark.parametrize(
    "number",
    [True, False, np.float64(1.5), np.float32(0.1), np.int64(-3), np.bool_(True), np.array(2.5)],
    ids=["True", "False", "float64", "float32", "int64", "bool_", "0-d array"],
)
def test_number_like_inputs_are_stored_as_their_float(witness, number):
    a, _, _ = witness
    v = Value(number)
    assert type(v.data) is float and v.data == float(number)
    v.data, v.grad = number, number
    assert (v.data, v.grad) == (float(number), float(number))
    assert type(v.grad) is float


@pytest.mark.parametrize("special", [math.nan, math.inf, -math.inf, -0.0])
def test_nan_and_infinities_are_stored_as_they_are(witness, special):
    v = Value(special)
    assert same_float(v.data, special)
    v.grad = special
    assert same_float(v.grad, special)


# -- operators on either side -----------------------------------------------------------------

BINARY = {
    "v + x": lambda v, x: v + x,
    "x + v": lambda v, x: x + v,
    "v - x": lambda v, x: v - x,
    "x - v": lambda v, x: x - v,
    "v * x": lambda v, x: v * x,
    "x * v": lambda v, x: x * v,
    "v / x": lambda v, x: v / x,
    "x / v": lambda v, x: x / v,
}


@pytest.mark.parametrize("op", BINARY.values(), ids=BINARY.keys())
@pytest.mark.parametrize("bad", REFUSED_BY_BOTH, ids=["None", "list", "dict", "object"])
def test_arithmetic_with_a_non_number_is_micrograds_type_error(witness, op, bad):
    raises_like_micrograd(lambda V: op(V(2.0), bad), TypeError)
    a, _, c = witness
    with pytest.raises(TypeError):
        op(a, bad)
    with pytest.raises(TypeError):
        op(c, bad)


@pytest.mark.parametrize("op", BINARY.values(), ids=BINARY.keys())
@pytest.mark.parametrize(
    "bad",
    ["1.5", b"1", np.str_("1.5"), np.bytes_(b"1"), 1j],
    ids=["str", "bytes", "numpy.str_", "numpy.bytes_", "complex"],
)
def test_arithmetic_with_a_str_or_complex_is_a_type_error(witness, op, bad):
    # micrograd would make Value("1.5") or a complex Value; a Value here holds a real number.
    a, _, _ = witness
    with pytest.raises(TypeError):
        op(a, bad)


@pytest.mark.parametrize("op", BINARY.values(), ids=BINARY.keys())
@pytest.mark.parametrize("huge", HUGE)
def test_arithmetic_with_a_huge_int_is_micrograds_overflow_error(witness, op, huge):
    raises_like_micrograd(lambda V: op(V(2.0), huge), OverflowError)
    a, _, _ = witness
    with pytest.raises(OverflowError):
        op(a, huge)


NUMBER_LIKES = [True, False, np.float64(0.1), np.float32(0.1), np.int64(3), np.bool_(True)]
NUMBER_LIKES_IDS = ["True", "False", "float64", "float32", "int64", "bool_"]


@pytest.mark.parametrize("op", BINARY.values(), ids=BINARY.keys())
@pytest.mark.parametrize("number", NUMBER_LIKES, ids=NUMBER_LIKES_IDS)
def test_arithmetic_with_number_likes_fails_as_in_micrograd(witness, op, number):
    # `v / x` is `v * x**-1` and `v - x` is `v + (-x)`: numpy computes x**-1 and -x itself
    # (np.int64(3)**-1 and -np.bool_(True) raise), in micrograd as here.
    m_kind, _ = outcome(lambda: op(MValue(2.0), number))
    c_kind, result = outcome(lambda: op(witness[0], number))
    assert c_kind == m_kind
    if c_kind == "ok":
        assert isinstance(result, Value)


@pytest.mark.parametrize("op", ["v + x", "x + v", "v * x", "x * v", "x - v"])
@pytest.mark.parametrize("number", NUMBER_LIKES, ids=NUMBER_LIKES_IDS)
def test_arithmetic_with_number_likes_is_arithmetic_with_their_float(witness, op, number):
    # (micrograd would compute in float32 for np.float32 and keep ints; a Value holds a float)
    result = BINARY[op](witness[0], number)
    assert isinstance(result, Value)
    assert result.data == BINARY[op](2.0, float(number))


@pytest.mark.parametrize(
    "exponent",
    ["2", None, [2], {}, object(), 2j, np.float32(2.0), np.int64(2), np.bool_(True)],
    ids=["str", "None", "list", "dict", "object", "complex", "float32", "int64", "bool_"],
)
def test_a_non_int_or_float_exponent_is_micrograds_assertion_error(witness, exponent):
    raises_like_micrograd(lambda V: V(2.0) ** exponent, AssertionError)
    raises_like_micrograd(lambda V: V(2.0) ** V(2.0), AssertionError)
    a, _, c = witness
    with pytest.raises(AssertionError, match="only supporting int/float powers"):  # micrograd's
        a**exponent
    with pytest.raises(AssertionError, match="only supporting int/float powers"):
        c**a


def test_pow_with_a_modulus_or_a_value_base_is_micrograds_type_error(witness):
    raises_like_micrograd(lambda V: pow(V(2.0), 2, 5), TypeError)
    raises_like_micrograd(lambda V: 2.0 ** V(2.0), TypeError)  # micrograd has no __rpow__
    raises_like_micrograd(lambda V: "2" ** V(2.0), TypeError)


@pytest.mark.parametrize("huge", HUGE)
def test_a_huge_int_exponent_is_micrograds_overflow_error(witness, huge):
    raises_like_micrograd(lambda V: V(2.0) ** huge, OverflowError)


def test_bool_and_numpy_float64_exponents_are_ints_and_floats(witness):
    # bool is an int and np.float64 a float, to micrograd's isinstance check as to ours.
    for exponent in (True, False, np.float64(2.5)):
        c_base, m_base = Value(3.0), MValue(3.0)
        c, m = c_base**exponent, m_base**exponent
        assert c.data == m.data
        c.backward(), m.backward()
        assert c_base.grad == m_base.grad


# -- NaN and infinities flow through as floats ------------------------------------------------

SPECIALS = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0, -1.0]


def _binary(op: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def build(V: type, x: float, y: float) -> tuple[Any, list[Any]]:
        a, b = V(x), V(y)
        return op(a, b), [a, b]

    return build


def _unary(op: Callable[[Any, float], Any]) -> Callable[..., Any]:
    def build(V: type, x: float, y: float) -> tuple[Any, list[Any]]:
        a = V(x)
        return op(a, y), [a]

    return build


# Each builds from x and y; returns the result and the Values whose grads backward() sets.
FORWARD = {
    "a + b": _binary(lambda a, b: a + b),
    "a * b": _binary(lambda a, b: a * b),
    "a - b": _binary(lambda a, b: a - b),
    "a / b": _binary(lambda a, b: a / b),
    "a * y": _unary(lambda a, y: a * y),
    "y - a": _unary(lambda a, y: y - a),
    "a / y": _unary(lambda a, y: a / y),
    "a**2": _unary(lambda a, y: a**2),
    "a**-1": _unary(lambda a, y: a**-1),
    "a**0.5": _unary(lambda a, y: a**0.5),
    "a**0": _unary(lambda a, y: a**0),
    "a.relu()": _unary(lambda a, y: a.relu()),
}


def outcome(build: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", result) or (the exception's class name, None)."""
    try:
        out = build()
    except Exception as e:
        return type(e).__name__, None
    return "ok", out


@pytest.mark.parametrize("build", FORWARD.values(), ids=FORWARD.keys())
def test_nan_and_inf_data_flow_through_operators_as_in_micrograd(witness, build):
    for x in SPECIALS:
        for y in SPECIALS:
            m_kind, m = outcome(functools.partial(build, MValue, x, y))
            c_kind, c = outcome(functools.partial(build, Value, x, y))
            if m_kind == "ok" and isinstance(m[0].data, complex):
                assert c_kind == "ValueError"  # where micrograd makes a complex number
                continue
            assert c_kind == m_kind, (x, y)
            if m_kind != "ok":
                continue
            (m_out, m_leaves), (c_out, c_leaves) = m, c
            assert same_float(c_out.data, float(m_out.data)), (x, y, c_out.data, m_out.data)
            m_kind, _ = outcome(m_out.backward)
            c_kind, _ = outcome(c_out.backward)
            assert c_kind == m_kind, (x, y)
            for c_leaf, m_leaf in zip(c_leaves, m_leaves):
                assert same_float(c_leaf.grad, float(m_leaf.grad)), (x, y)


@pytest.mark.parametrize("x", SPECIALS)
def test_nan_and_inf_through_tanh_and_exp_are_math_tanh_and_exp(witness, x):
    assert same_float(Value(x).tanh().data, math.tanh(x))
    assert same_float(Value(x).exp().data, math.exp(x))


# -- labels, _children and _op ----------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [5, 1.5, None, b"x", ["a"], object()],
    ids=["int", "float", "None", "bytes", "list", "object"],
)
def test_a_non_str_label_is_a_type_error_and_keeps_the_old_one(witness, bad):
    a, _, c = witness
    for v in (a, c):
        old = v.label
        with pytest.raises(TypeError):
            v.label = bad
        assert v.label == old


@pytest.mark.parametrize(
    "bad", [5, 1.5, b"x", ["a"], object()], ids=["int", "float", "bytes", "list", "object"]
)
def test_a_non_str_label_in_the_constructor_is_a_type_error(witness, bad):
    with pytest.raises(TypeError):
        Value(1.0, label=bad)


@pytest.mark.parametrize("falsy", [0, None, []], ids=["0", "None", "list"])
def test_a_falsy_non_str_label_in_the_constructor_is_a_type_error(witness, falsy):
    with pytest.raises(TypeError):
        Value(1.0, label=falsy)


def test_labels_take_any_str(witness):
    for text in ["", "x" * 100_000, "ünïcødé ∂L/∂w", "nul\0inside", "\udc80 lone surrogate"]:
        v = Value(1.0, label=text)
        assert v.label == text
        v.label = text[::-1]
        assert v.label == text[::-1]


def test_children_that_are_not_values_are_a_type_error(witness):
    a, b, _ = witness
    for children in [(1.0,), ("a",), (a, "x"), [None], "ab", [[a]]]:
        with pytest.raises(TypeError):
            Value(1.0, children)
    raises_like_micrograd(lambda V: V(1.0, 5), TypeError)  # not iterable
    raises_like_micrograd(lambda V: V(1.0, [[1.0]]), TypeError)  # unhashable
    with pytest.raises(ValueError):  # two parent slots per node
        Value(1.0, (a, b, Value(3.0)))


@pytest.mark.parametrize("falsy", [None, 0], ids=["None", "0"])
def test_a_falsy_non_iterable_children_is_micrograds_type_error(witness, falsy):
    raises_like_micrograd(lambda V: V(1.0, falsy), TypeError)


def test_a_non_str_op_is_a_type_error_and_frees_the_node_it_made(witness):
    a, b, _ = witness
    for op in (5, b"+", ["+"]):
        with pytest.raises(TypeError):
            Value(1.0, (a, b), op)
        with pytest.raises(TypeError):
            Value(1.0, (), op)


def test_hand_built_nodes_with_good_input_keep_children_and_op(witness):
    a, b, _ = witness
    v = Value(5.0, [a, b, a], "custom")  # a set: repeats count once
    assert v._prev == {a, b} and v._op == "custom"


# -- micrograd's nn with bad inputs -----------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [[1.0, "a"], [1.0, None], [1.0, [1.0]], [object(), 1.0], 5, None],
    ids=["str", "None", "list", "object", "int", "None-input"],
)
def test_a_model_called_on_non_numbers_is_micrograds_type_error(witness, bad):
    random.seed(0)
    model = MLP(2, [3, 1])
    before = [(p.data, p.grad) for p in model.parameters()]
    random.seed(0)
    reference = MMLP(2, [3, 1])
    with pytest.raises(TypeError):
        reference(bad)
    with pytest.raises(TypeError):
        model(bad)
    assert [(p.data, p.grad) for p in model.parameters()] == before
    out = model([0.5, -1.0])  # and it still works
    assert out.data == reference([0.5, -1.0]).data


@pytest.mark.parametrize("huge", HUGE[:1])
def test_a_model_called_on_a_huge_int_is_an_overflow_error(witness, huge):
    model = MLP(2, [3, 1])
    with pytest.raises(OverflowError):
        model([1.0, huge])
    assert isinstance(model([1.0, 2.0]), Value)


# -- the counts come back after failures in a row ---------------------------------------------


# Each failing call and the one exception it must raise (not merely one of several).
FAILED_ATTEMPTS: list[tuple[type[Exception], Callable[[Value], Any]]] = [
    (TypeError, lambda a: a + None),
    (TypeError, lambda a: None * a),
    (AssertionError, lambda a: a ** "2"),
    (ZeroDivisionError, lambda a: Value(0.0) ** -1),
    (TypeError, lambda a: Value(1.0, label=5)),
    (TypeError, lambda a: Value(1.0, (a,), 5)),
    (ValueError, lambda a: Value(-8.0) ** 0.5),
    (OverflowError, lambda a: Value(1e3).exp()),
    (ZeroDivisionError, lambda a: a / 0.0),
]


def test_many_failures_leak_no_handle_and_no_node(witness):
    a, _, _ = witness
    handles, nodes = settle()
    for _ in range(1000):
        for expected, attempt in FAILED_ATTEMPTS:
            with pytest.raises(expected):
                attempt(a)
    assert settle() == (handles, nodes)


@pytest.mark.parametrize("text", [np.str_("1.5"), np.bytes_(b"1.5")], ids=["str_", "bytes_"])
def test_a_numpy_string_stays_refused_after_meeting_an_operator(witness, text):
    # On the left of an operator it goes through the test that remembers numpy's number types
    # (so that later ones skip the checks); it is not one, and stays refused everywhere.
    a, _, _ = witness
    with pytest.raises(TypeError):
        text * a
    with pytest.raises(TypeError):
        Value(text)
    with pytest.raises(TypeError):
        a + text
    with pytest.raises(TypeError):  # an input of a model call: read by _to_float itself
        MLP(2, [2, 1])([a, text])
