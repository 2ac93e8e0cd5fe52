"""numpy numbers and arrays combined with a Value, as with micrograd's Value.

A numpy scalar on the left of an operator is a number: the Value's reflected operator runs at
once (Value.__array_ufunc__ is None, so numpy defers).  A numpy array on the left gives what
micrograd's gives: an object array of Values, one per element, each micrograd's node.
"""

import operator

import numpy as np
import pytest
from micrograd.engine import Value as MValue

from micrograd_c.engine import Value

OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv}
SCALARS = [np.float64(0.75), np.int64(-2), np.float32(1.5), np.int32(3), np.bool_(True)]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("scalar", SCALARS, ids=lambda s: type(s).__name__)
def test_a_numpy_scalar_on_the_left_makes_micrographs_value(op, scalar):
    ours, theirs = OPS[op](scalar, Value(3.0)), OPS[op](scalar, MValue(3.0))
    assert isinstance(ours, Value) and isinstance(theirs, MValue)
    assert ours.data == theirs.data
    assert ours._op == theirs._op and len(ours._prev) == len(theirs._prev)
    ours.backward()
    theirs.backward()
    assert [p.grad for p in sorted(ours._prev, key=lambda v: v.data)] == [
        float(p.grad) for p in sorted(theirs._prev, key=lambda v: v.data)
    ]


@pytest.mark.parametrize("op", OPS)
def test_a_numpy_array_on_the_left_makes_an_array_of_values(op):
    array = np.array([[1.0, -2.0], [0.5, 4.0]])
    ours, theirs = OPS[op](array, Value(3.0)), OPS[op](array, MValue(3.0))
    assert (ours.shape, ours.dtype) == (theirs.shape, theirs.dtype) == ((2, 2), np.dtype(object))
    assert all(isinstance(v, Value) for v in ours.flat)
    assert [v.data for v in ours.flat] == [float(v.data) for v in theirs.flat]


def test_a_zero_dimensional_array_is_a_number():
    for V in (Value, MValue):
        result = np.array(2.0) * V(3.0)
        assert isinstance(result, V) and result.data == 6.0


@pytest.mark.parametrize("V", [Value, MValue], ids=["micrograd_c", "micrograd"])
def test_a_numpy_number_cannot_be_raised_to_a_value(V):
    with pytest.raises(TypeError):
        np.float64(2.0) ** V(3.0)


@pytest.mark.parametrize("V", [Value, MValue], ids=["micrograd_c", "micrograd"])
def test_numpy_comparisons_with_a_value_are_refused(V):
    with pytest.raises(TypeError):
        np.float64(2.0) < V(3.0)  # noqa: B015 (the comparison itself must raise)
