"""Graphs that hold node 0, the first node of an empty arena: where every downward sweep ends.

In a long-running process node 0 is some old node; here the `empty_arena` fixture makes the
test's first node node 0, so backward, tracing, compaction and mg_mlp run up to the end of the
arena, as they do in a user's fresh interpreter.
"""

import math
import random

import pytest
from micrograd.engine import Value as MValue
from micrograd.nn import MLP as MMLP

from micrograd_c._core import lib
from micrograd_c.engine import Value
from micrograd_c.nn import MLP
from micrograd_c.viz import trace

from conftest import readme_example

pytestmark = pytest.mark.usefixtures("empty_arena")


def test_a_lone_leaf_at_node_0_backpropagates():
    a = Value(3.0)
    assert lib.mg_node_count() == 1
    a.backward()
    assert a.grad == 1.0


def test_readme_example_from_node_0_is_micrograds():
    got = readme_example(Value)
    want = readme_example(MValue)
    assert f"{got['g'].data:.4f}" == "24.7041"
    for name in want:
        assert got[name].data == want[name].data, name
        assert math.isclose(got[name].grad, want[name].grad, rel_tol=1e-12), name


def test_node_0_gets_its_gradient_from_every_path():
    x = Value(2.0)  # node 0
    y = x * x + x.tanh() * x.exp() + x.relu()
    y.backward()
    t, e = math.tanh(2.0), math.exp(2.0)
    want = 2 * 2.0 + (1 - t * t) * e + t * e + 1.0
    assert math.isclose(x.grad, want, rel_tol=1e-15)


def test_trace_reaches_node_0():
    a, b = Value(1.5), Value(-2.0)
    out = (a * b + a).relu()
    nodes, edges = trace(out)
    assert a in nodes and b in nodes
    assert len(nodes) == 5 and len(edges) == 5  # a, b, a*b, +, ReLU


def test_failed_backward_with_node_0_pending_leaves_no_mark():
    x = Value(0.0)  # node 0, still waiting in the sweep when x ** 0.5 fails
    s = x**0.5 + x * 3.0
    with pytest.raises(ZeroDivisionError):
        s.backward()
    x.grad = 0.0
    (x * 5.0).backward()  # a stray mark on node 0 would run its (leaf) step twice or not at all
    assert x.grad == 5.0
    nodes, _ = trace(x * 1.0)
    assert len(nodes) == 3


def test_compaction_keeps_node_0_and_drops_the_rest():
    keep = Value(7.0, label="kept")  # node 0
    junk = [keep * float(i) for i in range(2000)]
    del junk
    assert lib.mg_collect() == 0
    assert lib.mg_node_count() == 1
    assert (keep.data, keep.label) == (7.0, "kept")
    (keep * keep).backward()
    assert keep.grad == 14.0


def test_collect_on_an_empty_arena_is_fine():
    assert lib.mg_collect() == 0
    assert lib.mg_node_count() == 0
    assert Value(1.0).data == 1.0


def test_an_mlp_whose_first_weight_is_node_0_is_micrograds():
    random.seed(3)
    model = MLP(2, [4, 1])
    random.seed(3)
    reference = MMLP(2, [4, 1])
    out, want = model([0.5, -1.5]), reference([0.5, -1.5])
    assert out.data == want.data
    out.backward()
    want.backward()
    assert [p.grad for p in model.parameters()] == [float(p.grad) for p in reference.parameters()]
