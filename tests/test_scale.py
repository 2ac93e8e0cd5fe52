"""Scale: graphs far deeper than Python's recursion limit, and backward touching only what the
root reaches."""

import math
import sys

import pytest
from micrograd.engine import Value as MValue

from micrograd_c.engine import Value


def test_million_op_chain_backpropagates_with_the_exact_gradient(settled):
    c = 1.000001
    steps = 500_000  # two ops each: a chain one million nodes deep
    x0 = Value(0.5)
    x = x0
    for _ in range(steps):
        x = x * c + 1.0
    # the same arithmetic in plain floats: data, and d x / d x0 = c ** steps (as a product)
    data, grad = 0.5, 1.0
    for _ in range(steps):
        data = data * c + 1.0
        grad = c * grad
    assert x.data == data
    x.backward()
    assert x0.grad == grad
    assert math.isclose(grad, math.exp(0.5), rel_tol=1e-5)
    assert x.grad == 1.0


@pytest.mark.slow
def test_ten_million_deep_chain(settled):
    n = 10_000_000
    x0, w = Value(0.5), Value(1.0)
    x = x0
    for _ in range(n):
        x = x + w  # one node per step
    assert x.data == 0.5 + n
    x.backward()
    assert x0.grad == 1.0
    assert w.grad == float(n)


@pytest.mark.slow
def test_sum_of_a_million_values(settled):
    n = 1_000_000
    values = [Value(float(i)) for i in range(n)]
    total = sum(values)
    assert total.data == n * (n - 1) / 2
    total.backward()
    assert all(v.grad == 1.0 for v in values)


def test_micrograd_cannot_backpropagate_a_sum_of_3000_values():
    # The contrast these tests exist for: micrograd's recursive topological sort.
    n = max(3000, 3 * sys.getrecursionlimit())
    mtotal = sum(MValue(1.0) for _ in range(n))
    with pytest.raises(RecursionError):
        mtotal.backward()
    values = [Value(1.0) for _ in range(n)]
    total = sum(values)
    total.backward()
    assert total.data == n
    assert all(v.grad == 1.0 for v in values)


def test_deep_prev_walk_and_repr_do_not_recurse():
    x = Value(0.0)
    for _ in range(5 * sys.getrecursionlimit()):
        x = x.relu() + 1.0
    assert repr(x) == f"Value(data={x.data}, grad=0.0)"
    depth, v = 0, x
    while v._prev:  # walk down the chain through the proxies
        v = max(v._prev, key=lambda p: p._op != "")
        depth += 1
    assert v.data == 0.0 and v._op == ""
    assert depth == 2 * 5 * sys.getrecursionlimit()


def reachability_program(V):
    a, b = V(2.0), V(-3.0)
    unrelated_before = a * b  # built from the same leaves, between them and the root
    unrelated_before.grad = 5.0  # a stale grad set by hand
    stale_child = unrelated_before + a
    root = a + b * 2.0
    unrelated_after = (a * b).relu() + b  # built after the root
    unrelated_after.grad = -7.0
    root.backward()
    return [a, b, unrelated_before, stale_child, root, unrelated_after]


def test_backward_touches_only_what_the_root_reaches():
    got = [(v.data, v.grad) for v in reachability_program(Value)]
    want = [(v.data, v.grad) for v in reachability_program(MValue)]
    assert got == want
    a, b, before, stale_child, _, after = got
    assert a[1] == 1.0 and b[1] == 2.0  # no stale 5.0 * b or -7.0 leaked in
    assert before[1] == 5.0 and after[1] == -7.0 and stale_child[1] == 0.0


def test_backward_of_a_subgraph_root_leaves_its_consumers_alone():
    for V in (MValue, Value):
        a = V(3.0)
        mid = a * a
        top = mid + 1.0
        top.grad = 9.0
        mid.backward()  # top consumes mid but is not reached from it
        assert (top.grad, mid.grad, a.grad) == (9.0, 1.0, 6.0)
