"""One Python object per node: the lecture's own code, keyed on id(), sees micrograd's graph.

The lecture's `trace` and `draw_dot` (and micrograd's trace_graph notebook) put Values in sets by
==/hash but name graphviz nodes by id().  They are copied below as the lecture writes them and run
unchanged on micrograd_c's Values; node and edge counts must be micrograd's, and every edge must
join declared nodes.  micrograd has no exp or tanh: for those the reference is the lecture's own
Value class, also copied below.
"""

from __future__ import annotations

import gc
import math
import random
import threading
import weakref

import pytest
from micrograd.engine import Value as MValue
from micrograd.nn import MLP as MMLP

from micrograd_c._core import lib
from micrograd_c.engine import Value
from micrograd_c.nn import MLP

from conftest import readme_example

graphviz = pytest.importorskip("graphviz")

# -- the lecture's code, as written there ------------------------------------------------------


def trace(root):
    # builds a set of all nodes and edges in a graph
    nodes, edges = set(), set()

    def build(v):
        if v not in nodes:
            nodes.add(v)
            for child in v._prev:
                edges.add((child, v))
                build(child)

    build(root)
    return nodes, edges


def draw_dot(root):
    dot = graphviz.Digraph(format="svg", graph_attr={"rankdir": "LR"})  # LR = left to right

    nodes, edges = trace(root)
    for n in nodes:
        uid = str(id(n))
        # for any value in the graph, create a rectangular ('record') node for it
        dot.node(
            name=uid,
            # (UP031: the lecture's own %-format, copied as the lecture writes it.)
            label="{ %s | data %.4f | grad %.4f }" % (n.label, n.data, n.grad),  # noqa: UP031
            shape="record",
        )
        if n._op:
            # if this value is a result of some operation, create an op node for it
            dot.node(name=uid + n._op, label=n._op)
            # and connect this node to it
            dot.edge(uid + n._op, uid)

    for n1, n2 in edges:
        # connect n1 to the op node of n2
        dot.edge(str(id(n1)), str(id(n2)) + n2._op)

    return dot


class LectureValue:
    """The lecture's Value (micrograd's, plus label, exp and tanh), for the ops micrograd lacks."""

    def __init__(self, data, _children=(), _op="", label=""):
        self.data = data
        self.grad = 0.0
        self._backward = lambda: None
        self._prev = set(_children)
        self._op = _op
        self.label = label

    def __add__(self, other):
        other = other if isinstance(other, LectureValue) else LectureValue(other)
        return LectureValue(self.data + other.data, (self, other), "+")

    def __radd__(self, other):
        return self + other

    def __mul__(self, other):
        other = other if isinstance(other, LectureValue) else LectureValue(other)
        return LectureValue(self.data * other.data, (self, other), "*")

    def __rmul__(self, other):
        return self * other

    def __pow__(self, other):
        return LectureValue(self.data**other, (self,), f"**{other}")

    def __truediv__(self, other):
        return self * other**-1

    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-other)

    def exp(self):
        return LectureValue(math.exp(self.data), (self,), "exp")

    def tanh(self):
        return LectureValue(math.tanh(self.data), (self,), "tanh")


# -- the graphs ----------------------------------------------------------------------------------


def readme_graph(V):
    return readme_example(V, backward=False)["g"]


def exp_neuron(V):
    """The lecture's neuron with tanh spelled out through exp: e is used twice."""
    x1, x2 = V(2.0, label="x1"), V(0.0, label="x2")
    w1, w2 = V(-3.0, label="w1"), V(1.0, label="w2")
    b = V(6.8813735870195432, label="b")
    n = x1 * w1 + x2 * w2 + b
    e = (2 * n).exp()
    return (e - 1) / (e + 1)


def shared_leaf(V):
    a, b = V(2.0), V(3.0)
    d = a * b
    e = a + b
    return d * e


def mlp_loss(V, MLPClass):
    random.seed(7)
    model = MLPClass(3, [4, 4, 1])
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]
    return sum((model(x) - y) ** 2 for x, y in zip(xs, ys))


GRAPHS = {
    "readme": (readme_graph, lambda: readme_graph(MValue)),
    "exp_neuron": (exp_neuron, lambda: exp_neuron(LectureValue)),
    "shared_leaf": (shared_leaf, lambda: shared_leaf(MValue)),
    "mlp_loss": (lambda V: mlp_loss(V, MLP), lambda: mlp_loss(MValue, MMLP)),
}


def picture(dot):
    """A drawn graph's node names and edges, from graphviz's own source."""
    names, edges = set(), []
    for line in dot.body:
        line = line.strip()
        if "->" in line:
            tail, head = line.split(" -> ")
            edges.append((tail.strip(), head.strip()))
        else:
            names.add(line.split(" ", 1)[0])
    return names, edges


@pytest.mark.parametrize("name", GRAPHS)
def test_the_lectures_draw_dot_draws_micrographs_picture(name):
    ours, reference = GRAPHS[name]
    root, ref_root = ours(Value), reference()
    nodes, edges = trace(root)
    ref_nodes, ref_edges = trace(ref_root)
    assert (len(nodes), len(edges)) == (len(ref_nodes), len(ref_edges))
    assert len({id(n) for n in nodes}) == len(nodes)  # one object per node

    names, drawn = picture(draw_dot(root))
    # micrograd's picture: a record per node, and an op oval (with its edge) per made node
    made = sum(1 for n in ref_nodes if n._op)
    assert (len(names), len(drawn)) == (len(ref_nodes) + made, len(ref_edges) + made)
    undeclared = [edge for edge in drawn if edge[0] not in names or edge[1] not in names]
    assert undeclared == []  # graphviz would draw each as a bare oval named by a number


def test_micrographs_readme_example_draws_39_values_and_51_edges():
    root = readme_graph(Value)
    nodes, edges = trace(root)
    assert (len(nodes), len(edges)) == (39, 51)
    names, drawn = picture(draw_dot(root))
    ops = sum(1 for n in nodes if n._op)
    assert (len(names), len(drawn)) == (39 + ops, 51 + ops)  # no bare oval named by a number


def test_prev_hands_out_the_same_object_while_it_lives():
    a, b = Value(2.0), Value(3.0)
    c = a * b
    first = c._prev
    second = c._prev
    assert {id(v) for v in first} == {id(v) for v in second}
    assert first == {a, b}  # equal to the user's own Values (the same node)


def test_two_parents_show_one_object_for_a_shared_child():
    a = Value(2.0)
    d, e = a * 3.0, a + 1.0
    (from_d,) = [v for v in d._prev if v == a]
    (from_e,) = [v for v in e._prev if v == a]
    assert from_d is from_e


def test_viz_trace_and_prev_agree_on_objects():
    from micrograd_c.viz import trace as viz_trace

    root = shared_leaf(Value)
    nodes, edges = viz_trace(root)
    assert root in nodes and any(n is root for n in nodes)  # the caller's root itself
    by_id = {id(n) for n in nodes}
    for child, parent in edges:
        assert id(child) in by_id and id(parent) in by_id
        assert any(p is child for p in parent._prev)


def test_a_freed_object_is_never_handed_out_again_and_nothing_leaks():
    gc.collect()
    handles = lib.mg_handle_count()
    a = Value(1.0)
    b = a.relu()
    (shown,) = b._prev
    ref = weakref.ref(shown)
    del shown
    gc.collect()
    assert ref() is None
    (again,) = b._prev
    assert again == a and again.data == 1.0
    for k in range(1000):  # handle slots get reused by new nodes: the registry must not mix them
        Value(float(k)) * 2.0
    assert again.data == 1.0 and again == a
    del a, b, again
    gc.collect()
    assert lib.mg_handle_count() == handles


def test_threads_calling_prev_get_one_object_per_node():
    roots = [shared_leaf(Value) for _ in range(4)]
    seen: dict[int, set[int]] = {}
    keep = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def walk():
        barrier.wait()
        for _ in range(300):
            for root in roots:
                nodes, _ = trace(root)
                with lock:
                    keep.append(nodes)
                    for n in nodes:
                        if n is not root:
                            seen.setdefault(n._h, set()).add(id(n))

    threads = [threading.Thread(target=walk) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen and all(len(ids) == 1 for ids in seen.values())


def test_objects_dropped_by_one_thread_while_another_walks_stay_valid():
    """A registered Value freed by one thread and fetched by another mid-finalizer must keep its
    node: reading it never gives NaN (a stale handle) or another node's number."""
    root = shared_leaf(Value)
    expected = {round(v.data, 9) for v in trace(root)[0]}
    errors = []
    stop = threading.Event()

    def walker():
        while not stop.is_set():
            for v in trace(root)[0]:
                if round(v.data, 9) not in expected:
                    errors.append(v.data)

    threads = [threading.Thread(target=walker) for _ in range(3)]
    for t in threads:
        t.start()
    for _ in range(2000):
        nodes, _ = trace(root)
        del nodes
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
