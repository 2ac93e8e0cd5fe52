"""tanh() and exp(): the two ops from Karpathy's lecture that micrograd 0.1.0 does not ship.

There is no micrograd reference here, so forward values are checked against the math module
(bit for bit) and gradients against central finite differences.
"""

import math
import random

import pytest

from micrograd_c.engine import Value

H = 1e-6
REL = 1e-6

rng = random.Random(20240601)
SAMPLES = (
    [0.0, -0.0, 1e-300, -1e-300, 0.5, -0.5, 1.0, -1.0, 3.0, 19.0, -19.0, 20.0, 700.0, 709.7]
    + [rng.uniform(-5, 5) for _ in range(300)]
    + [rng.uniform(-700, 700) for _ in range(100)]
)


def test_tanh_forward_is_math_tanh():
    for x in SAMPLES + [math.inf, -math.inf, 1e308]:
        got = Value(x).tanh().data
        assert got == math.tanh(x), x
        assert math.copysign(1, got) == math.copysign(1, math.tanh(x)), x
    assert math.isnan(Value(math.nan).tanh().data)


def test_exp_forward_is_math_exp():
    for x in SAMPLES + [-math.inf, -1000.0, -745.2]:
        assert Value(x).exp().data == math.exp(x), x
    assert Value(math.inf).exp().data == math.inf  # math.exp(inf) is inf, no error
    assert math.isnan(Value(math.nan).exp().data)


def test_op_strings_and_children():
    x = Value(0.3)
    t, e = x.tanh(), x.exp()
    assert t._op == "tanh"
    assert e._op == "exp"
    assert t._prev == {x}
    assert e._prev == {x}


def central_difference(f, x):
    return (f(x + H) - f(x - H)) / (2 * H)


@pytest.mark.parametrize("x", [-2.0, -0.7, -0.1, 0.0, 0.25, 0.8813735870195432, 1.7])
def test_tanh_grad_matches_finite_differences(x):
    v = Value(x)
    out = v.tanh()
    out.backward()
    assert math.isclose(v.grad, central_difference(math.tanh, x), rel_tol=REL)
    assert math.isclose(v.grad, 1 - math.tanh(x) ** 2, rel_tol=4e-16)  # the lecture's 1 - t**2
    assert out.grad == 1.0


@pytest.mark.parametrize("x", [-3.0, -0.5, 0.0, 0.5, 2.0, 5.0])
def test_exp_grad_matches_finite_differences(x):
    v = Value(x)
    out = v.exp()
    out.backward()
    assert math.isclose(v.grad, central_difference(math.exp, x), rel_tol=REL)
    assert v.grad == math.exp(x)  # d/dx exp(x) is the output itself


def neuron(Value, x1, x2, w1, w2, b):
    # The lecture's neuron, with exp in the mix: o = tanh(x1*w1 + x2*w2 + b) * exp(-x1)
    n = x1 * w1 + x2 * w2 + b
    return n.tanh() * (-x1).exp()


def neuron_float(x1, x2, w1, w2, b):
    return math.tanh(x1 * w1 + x2 * w2 + b) * math.exp(-x1)


@pytest.mark.parametrize(
    "inputs",
    [
        (2.0, 0.0, -3.0, 1.0, 6.8813735870195432),
        (0.5, -1.5, 0.3, 0.9, -0.2),
        (-1.0, 2.0, 0.7, -0.4, 0.1),
    ],
)
def test_composite_grads_match_finite_differences(inputs):
    leaves = [Value(x) for x in inputs]
    out = neuron(Value, *leaves)
    assert out.data == neuron_float(*inputs)
    out.backward()
    for k, leaf in enumerate(leaves):

        def f(t, k=k):
            moved = list(inputs)
            moved[k] = t
            return neuron_float(*moved)

        want = central_difference(f, inputs[k])
        assert math.isclose(leaf.grad, want, rel_tol=REL, abs_tol=1e-9), k


def test_lecture_neuron_numbers():
    # Karpathy's lecture: o = tanh(n) with n = 0.8814 gives o = 0.7071 and the grads below.
    x1, x2, w1, w2, b = (Value(v) for v in (2.0, 0.0, -3.0, 1.0, 6.8813735870195432))
    o = (x1 * w1 + x2 * w2 + b).tanh()
    o.backward()
    assert f"{o.data:.4f}" == "0.7071"
    assert [round(v.grad, 4) for v in (x1, x2, w1, w2)] == [-1.5, 0.5, 1.0, 0.0]


def test_tanh_saturates_without_nan():
    v = Value(1000.0)
    t = v.tanh()
    t.backward()
    assert t.data == 1.0
    assert v.grad == 0.0


def test_exp_overflow_raises_like_math_exp():
    with pytest.raises(OverflowError):
        math.exp(1000.0)
    v = Value(1000.0)
    with pytest.raises(OverflowError, match="math range error"):
        v.exp()
    with pytest.raises(OverflowError):
        Value(709.79).exp()
    # the arena is intact afterwards
    assert v.data == 1000.0
    e = Value(1.0).exp()
    e.backward()
    assert e.data == math.e
