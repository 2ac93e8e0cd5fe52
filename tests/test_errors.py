"""Arithmetic errors (0.0 ** -1, overflow, a complex result, NaN and infinities, failures in
backward): the exception micrograd (or Python's float arithmetic) raises, and an intact arena
afterwards.  Input a Value cannot take at all (wrong types, huge ints) is test_bad_input.py's."""

import gc
import math

import pytest
from micrograd.engine import Value as MValue

from micrograd_c._core import lib
from micrograd_c.engine import Value


@pytest.fixture
def bystanders():
    """A graph built and differentiated before the failure; it must come through unharmed."""
    a, b = Value(2.0, label="a"), Value(-3.0, label="b")
    out = (a * b + a**2).relu() + (b - a).tanh()
    out.backward()
    snapshot = [(v.data, v.grad) for v in (a, b, out)]
    gc.collect()
    handles = lib.mg_handle_count()
    yield a, b, out
    gc.collect()
    assert [(v.data, v.grad) for v in (a, b, out)] == snapshot
    assert (a.label, b.label) == ("a", "b")
    assert lib.mg_handle_count() == handles, "a failed operation leaked a handle"
    # new work still succeeds, on old and new nodes alike
    for v in (a, b):
        v.grad = 0.0
    fresh = a * b + Value(1.0)
    fresh.backward()
    assert (fresh.data, a.grad, b.grad) == (-5.0, -3.0, 2.0)


@pytest.mark.parametrize("exponent", [-1, -2, -0.5, -1.0])
def test_zero_to_a_negative_power(exponent, bystanders):
    for V in (MValue, Value):
        with pytest.raises(ZeroDivisionError):
            V(0.0) ** exponent
    with pytest.raises(ZeroDivisionError):
        Value(-0.0) ** exponent
    with pytest.raises(ZeroDivisionError):
        1.0 / Value(0.0)
    with pytest.raises(ZeroDivisionError):
        Value(1.0) / Value(0.0)


def test_zero_sqrt_backward_is_a_zero_division_error_like_micrograd(bystanders):
    roots = []
    for V in (MValue, Value):
        x = V(0.0)
        r = x**0.5
        assert r.data == 0.0
        with pytest.raises(ZeroDivisionError):
            r.backward()  # d/dx x**0.5 = 0.5 * x**-0.5: 0.0 ** -0.5
        roots.append((r.grad, x.grad))
    assert roots[1] == roots[0] == (1, 0)  # root grad set, nothing flowed past the failure
    r.grad = 1.0
    with pytest.raises(ZeroDivisionError):
        r._backward()


def test_failed_backward_leaves_no_trace_in_later_backwards(bystanders):
    results = []
    for V in (MValue, Value):
        x, y = V(0.0), V(2.0)
        m = y * y  # made before the power node: still waiting in the sweep when it fails
        s = x**0.5 + m
        with pytest.raises(ZeroDivisionError):
            s.backward()
        nodes, todo = [], [s]
        while todo:
            v = todo.pop()
            nodes.append(v)
            todo.extend(v._prev)
        for v in nodes:
            v.grad = 1.0  # anything a stray sweep of these nodes would pass on shows up
        t = y * 3.0 + 1.0  # another graph, sharing only y
        t.backward()
        results.append(sorted((v._op, float(v.data), float(v.grad)) for v in nodes))
        assert y.grad == 1.0 + 3.0
        assert all(v.grad == 1.0 for v in nodes if v is not y and v != y)
    assert results[0] == results[1]


@pytest.mark.parametrize("base, exponent", [(10.0, 400), (10.0, 400.0), (-10.0, 401), (1e-200, -2)])
def test_power_out_of_range_is_an_overflow_error_like_micrograd(base, exponent, bystanders):
    with pytest.raises(OverflowError):
        base**exponent
    for V in (MValue, Value):
        with pytest.raises(OverflowError):
            V(base) ** exponent


def test_power_underflow_is_not_an_error():
    assert (Value(10.0) ** -400).data == 10.0**-400 == 0.0
    assert (Value(1e-200) ** 2).data == 0.0


def test_overflow_in_backward_like_micrograd(bystanders):
    for V in (MValue, Value):
        x = V(1e-200)
        inv = x**-1  # 1e200: fine; its backward needs x ** -2 = 1e400
        with pytest.raises(OverflowError):
            inv.backward()


def test_negative_to_a_fractional_power_is_a_clear_value_error(bystanders):
    m = MValue(-8.0) ** (1 / 3)
    assert isinstance(m.data, complex)  # micrograd quietly goes complex
    with pytest.raises(ValueError, match="negative number raised to a fractional power is complex"):
        Value(-8.0) ** (1 / 3)
    with pytest.raises(ValueError):
        Value(-1e-300) ** 0.5
    assert (Value(-8.0) ** 3.0).data == -512.0  # an integral float exponent is fine
    assert (Value(-math.inf) ** 0.5).data == math.inf == (-math.inf) ** 0.5


def test_exp_overflow_is_math_exps_overflow_error(bystanders):
    with pytest.raises(OverflowError, match="math range error"):
        math.exp(1000.0)
    with pytest.raises(OverflowError, match="math range error"):
        Value(1000.0).exp()
    assert Value(709.0).exp().data == math.exp(709.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda V, inf, nan: V(nan) + 1.0,
        lambda V, inf, nan: 1.0 + V(nan),
        lambda V, inf, nan: V(nan) * V(0.0),
        lambda V, inf, nan: V(inf) + V(-inf),
        lambda V, inf, nan: V(inf) * 0,
        lambda V, inf, nan: V(inf) * -2,
        lambda V, inf, nan: V(inf) - V(inf),
        lambda V, inf, nan: V(1e308) * 10.0,
        lambda V, inf, nan: V(-1e308) - 1e308,
        lambda V, inf, nan: V(inf) / 2.0,
        lambda V, inf, nan: 1.0 / V(inf),
        lambda V, inf, nan: V(nan).relu(),
        lambda V, inf, nan: V(nan) ** 2,
        lambda V, inf, nan: V(nan) ** 0,
        lambda V, inf, nan: V(1.0) ** nan,
        lambda V, inf, nan: V(inf) ** -1,
        lambda V, inf, nan: V(5.0) ** inf,
        lambda V, inf, nan: V(0.5) ** inf,
    ],
)
def test_nan_and_inf_flow_as_floats_do(make, bystanders):
    got = make(Value, math.inf, math.nan)
    want = make(MValue, math.inf, math.nan)
    if math.isnan(want.data):
        assert math.isnan(got.data)
    else:
        assert got.data == want.data
        assert math.copysign(1, got.data) == math.copysign(1, want.data)
    got.backward()
    want.backward()
    leaves_got = sorted((repr(float(v.data)), repr(float(v.grad))) for v in got._prev)
    leaves_want = sorted((repr(float(v.data)), repr(float(v.grad))) for v in want._prev)
    assert leaves_got == leaves_want


def test_bad_limits_are_refused():
    assert lib.mg_set_node_limit(0) == lib.MG_ERR_BAD_ARGUMENT
    assert lib.mg_set_node_limit(2**31) == lib.MG_ERR_BAD_ARGUMENT
    assert lib.mg_set_node_limit(2**31 - 1) == 0
