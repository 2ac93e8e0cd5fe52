"""micrograd_c.viz against the lecture's trace/draw_dot run on the real micrograd.

Each expression is built twice, once from micrograd's Value and once from micrograd_c's; the
micrograd side is traced the lecture's way (walking _prev) and drawn in the lecture's format,
and micrograd_c's trace() and draw_dot() must give the same graph: the same Values (op, data,
grad), the same edges, the same record texts.
"""

from __future__ import annotations

import gc
import math
import random
import re
import shutil
import sys
from collections import Counter
from typing import Any, Callable

import graphviz
import micrograd.engine
import micrograd.nn
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import micrograd_c.engine
import micrograd_c.nn
from micrograd_c._core import lib
from micrograd_c.viz import draw_dot, trace

from conftest import readme_example

# -- the expressions, written once for either library --------------------------------------


def tanh(v: Any) -> Any:
    """v.tanh(); micrograd 0.1.0 has none, so its node is built the lecture's way by hand."""
    if isinstance(v, micrograd.engine.Value):
        return micrograd.engine.Value(math.tanh(v.data), (v,), "tanh")
    return v.tanh()


def exp(v: Any) -> Any:
    if isinstance(v, micrograd.engine.Value):
        return micrograd.engine.Value(math.exp(v.data), (v,), "exp")
    return v.exp()


def labelled(v: Any, label: str) -> Any:
    v.label = label  # micrograd's Value takes any attribute; the lecture's draw_dot reads it
    return v


def readme(Value: type) -> Any:
    """micrograd's README example (every operator but tanh/exp)."""
    return readme_example(Value, backward=False)["g"]


def lecture_expression(Value: type) -> Any:
    """The lecture's first graph, L = (a*b + c) * f, labels on every Value."""
    a = labelled(Value(2.0), "a")
    b = labelled(Value(-3.0), "b")
    c = labelled(Value(10.0), "c")
    e = labelled(a * b, "e")
    d = labelled(e + c, "d")
    f = labelled(Value(-2.0), "f")
    return labelled(d * f, "L")


def lecture_neuron(Value: type) -> Any:
    """The lecture's neuron, o = tanh(x1*w1 + x2*w2 + b)."""
    x1 = labelled(Value(2.0), "x1")
    x2 = labelled(Value(0.0), "x2")
    w1 = labelled(Value(-3.0), "w1")
    w2 = labelled(Value(1.0), "w2")
    b = labelled(Value(6.8813735870195432), "b")
    x1w1 = labelled(x1 * w1, "x1*w1")
    x2w2 = labelled(x2 * w2, "x2*w2")
    n = labelled(labelled(x1w1 + x2w2, "x1*w1 + x2*w2") + b, "n")
    return labelled(tanh(n), "o")


def lecture_neuron_exp(Value: type) -> Any:
    """The same neuron with tanh spelled out through exp, as the lecture rewrites it."""
    x1, x2, w1, w2 = Value(2.0), Value(0.0), Value(-3.0), Value(1.0)
    n = x1 * w1 + x2 * w2 + Value(6.8813735870195432)
    e = exp(2 * n)
    return (e - 1) / (e + 1)


def shared(Value: type) -> Any:
    """s used twice, a used twice in one node: each must appear once."""
    a = Value(3.0)
    s = a * a
    return s + s.relu()


def mlp(Value: type) -> Any:
    """micrograd's MLP(3, [4, 4, 1]) on the lecture's first point, seeded alike."""
    nn = micrograd.nn if Value is micrograd.engine.Value else micrograd_c.nn
    random.seed(0)
    return nn.MLP(3, [4, 4, 1])([2.0, 3.0, -1.0])


EXAMPLES = [readme, lecture_expression, lecture_neuron, lecture_neuron_exp, shared, mlp]
HAS_BACKWARD = {readme, lecture_expression, shared, mlp}  # micrograd 0.1.0 has no tanh/exp grads


def build(example: Callable[[type], Any]) -> tuple[Any, Any]:
    """The example on micrograd and on micrograd_c, after backward() where micrograd has it."""
    ref, out = example(micrograd.engine.Value), example(micrograd_c.engine.Value)
    if example in HAS_BACKWARD:
        ref.backward()
        out.backward()
    return ref, out


# -- the lecture's trace and record text, on micrograd ------------------------------------


def reference_trace(root: Any) -> tuple[set[Any], set[tuple[Any, Any]]]:
    """The lecture's trace, walking _prev (with a stack, not recursion)."""
    nodes, edges, stack = set(), set(), [root]
    while stack:
        v = stack.pop()
        if v not in nodes:
            nodes.add(v)
            for child in v._prev:
                edges.add((child, v))
                stack.append(child)
    return nodes, edges


def record(v: Any) -> str:
    """The lecture's record text for v."""
    # (UP031: the lecture's own %-format, copied as the lecture writes it.)
    return "{ %s | data %.4f | grad %.4f }" % (getattr(v, "label", ""), v.data, v.grad)  # noqa: UP031


def key(v: Any) -> tuple[str, float]:
    return v._op, v.data


# -- reading a draw_dot Digraph back --------------------------------------------------------

RECORD = re.compile(r'\t(\d+) \[label="(\{ .* \})" shape=record\]')
OP = re.compile(r'\t"(\d+op)" \[label=(?:"(.*)"|(\w+))\]')  # graphviz quotes only if needed
EDGE = re.compile(r'\t"?(\w+)"? -> "?(\w+)"?')


def parse(dot: graphviz.Digraph) -> tuple[dict[str, str], dict[str, str], list[tuple[str, str]]]:
    """(record node name -> its label, op node name -> its label, edges), each source line
    being exactly one of those."""
    records, ops, edges = {}, {}, []
    for line in dot.body:
        line = line.rstrip("\n")
        if m := RECORD.fullmatch(line):
            records[m[1]] = m[2]
        elif m := OP.fullmatch(line):
            ops[m[1]] = m[2] if m[3] is None else m[3]
        elif m := EDGE.fullmatch(line):
            edges.append((m[1], m[2]))
        else:
            raise AssertionError(f"unexpected Digraph line {line!r}")
    return records, ops, edges


def label_of(record_text: str) -> str:
    return record_text.split(" | ")[0][len("{ ") :]


def drawn_edges(dot: graphviz.Digraph) -> Counter[tuple[str, str]]:
    """The drawn value-to-value edges as (child record, parent record) texts: an edge into an
    op node stands for an edge into the Value that op node feeds."""
    records, ops, edges = parse(dot)
    feeds = {src: dst for src, dst in edges if src in ops}
    assert len(feeds) == len(ops) and all(dst in records for dst in feeds.values())
    inputs = [(src, dst) for src, dst in edges if src in records]
    # an edge goes into the op node of a Value that has one, as the lecture draws it
    assert all(dst in ops or dst not in feeds.values() for _, dst in inputs)
    return Counter((records[src], records[feeds.get(dst, dst)]) for src, dst in inputs)


# -- trace() ------------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda f: f.__name__)
def test_trace_is_micrograds(example: Callable[[type], Any]) -> None:
    ref, out = build(example)
    ref_nodes, ref_edges = reference_trace(ref)
    nodes, edges = trace(out)
    assert len(nodes) == len(ref_nodes) and len(edges) == len(ref_edges)
    assert Counter(map(key, nodes)) == Counter(map(key, ref_nodes))
    assert Counter((key(c), key(p)) for c, p in edges) == Counter(
        (key(c), key(p)) for c, p in ref_edges
    )
    assert out in nodes  # the root, as the very Value passed in (one handle per node)
    assert all(c in nodes and p in nodes for c, p in edges)
    assert all(c in p._prev for c, p in edges)


OPS: dict[str, Callable[[Any, Any], Any]] = {
    "add": lambda x, y: x + y,
    "mul": lambda x, y: x * y,
    "sub": lambda x, y: x - y,
    "neg": lambda x, _: -x,
    "relu": lambda x, _: x.relu(),
    "square": lambda x, _: x**2,
    "add_const": lambda x, _: 0.5 + x,
}
steps = st.lists(
    st.tuples(st.sampled_from(sorted(OPS)), st.integers(0, 10**6), st.integers(0, 10**6)),
    min_size=1,
    max_size=8,  # few enough squarings that nothing overflows
)


def program(Value: type, leaves: list[float], ops: list[tuple[str, int, int]]) -> Any:
    """A random graph: each step applies an op to Values made so far (so they are shared)."""
    made = [Value(x) for x in leaves]
    for op, i, j in ops:
        made.append(OPS[op](made[i % len(made)], made[j % len(made)]))
    return made[-1]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=1, max_size=3), steps)
def test_trace_and_draw_dot_of_random_graphs(leaves: list[float], ops: list[Any]) -> None:
    ref = program(micrograd.engine.Value, leaves, ops)
    out = program(micrograd_c.engine.Value, leaves, ops)
    ref.backward()
    out.backward()
    ref_nodes, ref_edges = reference_trace(ref)
    nodes, edges = trace(out)
    assert Counter(map(key, nodes)) == Counter(map(key, ref_nodes))
    assert Counter((key(c), key(p)) for c, p in edges) == Counter(
        (key(c), key(p)) for c, p in ref_edges
    )
    dot = draw_dot(out)
    # Zero's sign is masked on both sides: see test_signed_zero_after_relu_is_micrograds.
    records = Counter(map(unsigned_zero, parse(dot)[0].values()))
    assert records == Counter(unsigned_zero(record(v)) for v in ref_nodes)
    edges_drawn = Counter(tuple(map(unsigned_zero, e)) for e in drawn_edges(dot).elements())
    assert edges_drawn == Counter(
        (unsigned_zero(record(c)), unsigned_zero(record(p))) for c, p in ref_edges
    )


def unsigned_zero(record_text: str) -> str:
    return re.sub(r" -(0\.0000)\b", r" \1", record_text)


def test_zero_after_relu_is_a_float_zero() -> None:
    # README, "Differences you can see": micrograd's relu gives the int 0 and 0 * -1 stays 0;
    # micrograd_c holds floats, so IEEE's 0.0 * -1.0 is -0.0.  Equal as numbers, drawn signed.
    ref = -micrograd.engine.Value(-1.0).relu()
    out = -micrograd_c.engine.Value(-1.0).relu()
    assert out.data == ref.data == 0
    assert math.copysign(1.0, out.data) == -1.0
    assert "data -0.0000" in parse(draw_dot(out))[0]["0"]


def test_trace_finds_the_callers_values() -> None:
    a, b = micrograd_c.engine.Value(2.0), micrograd_c.engine.Value(-3.0)
    nodes, edges = trace(a * b + a)
    assert a in nodes and b in nodes
    assert {(c.data, p.data) for c, p in edges} == {
        (2.0, -6.0),
        (-3.0, -6.0),
        (-6.0, -4.0),
        (2.0, -4.0),
    }


def test_trace_of_a_leaf() -> None:
    a = micrograd_c.engine.Value(1.5)
    assert trace(a) == ({a}, set())


def test_trace_does_not_recurse() -> None:
    x = micrograd_c.engine.Value(1.0)
    for _ in range(sys.getrecursionlimit() * 2):
        x = x + 1.0
    nodes, edges = trace(x)
    assert len(nodes) == 4 * sys.getrecursionlimit() + 1
    assert len(edges) == len(nodes) - 1


def test_trace_rejects_what_is_not_a_value() -> None:
    with pytest.raises(TypeError, match="micrograd_c Value"):
        trace(micrograd.engine.Value(1.0))


# -- draw_dot() ---------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda f: f.__name__)
def test_draw_dot_is_the_lectures_picture(example: Callable[[type], Any]) -> None:
    ref, out = build(example)
    ref_nodes, ref_edges = reference_trace(ref)
    dot = draw_dot(out)
    records, ops, edges = parse(dot)
    # one record per Value, with the lecture's text (label, data %.4f, grad %.4f)
    assert Counter(records.values()) == Counter(map(record, ref_nodes))
    # one op node per Value an operation made, labelled with the op
    assert Counter(ops.values()) == Counter(v._op for v in ref_nodes if v._op)
    # op -> value for each op node, child -> op node for each edge of the graph
    assert len(edges) == len(ops) + len(ref_edges)
    assert drawn_edges(dot) == Counter((record(c), record(p)) for c, p in ref_edges)


def test_draw_dot_shows_the_labels() -> None:
    records, _, _ = parse(draw_dot(lecture_neuron(micrograd_c.engine.Value)))
    labels = {label_of(text) for text in records.values()}
    assert labels == {"x1", "x2", "w1", "w2", "b", "x1*w1", "x2*w2", "x1*w1 + x2*w2", "n", "o"}


def test_draw_dot_draws_a_shared_subexpression_once() -> None:
    a = micrograd_c.engine.Value(3.0, label="a")
    s = a * a
    s.label = "s"
    out = s + s.relu()
    records, ops, edges = parse(draw_dot(out))
    assert len(records) == 4 and sorted(ops.values()) == ["*", "+", "ReLU"]
    assert sorted(map(label_of, records.values())) == ["", "", "a", "s"]
    # a -> *, s -> +, s -> ReLU, ReLU value -> +, and one op -> value edge per op node
    assert len(edges) == 4 + 3


def test_draw_dot_record_of_an_unlabelled_value() -> None:
    records, ops, edges = parse(draw_dot(micrograd_c.engine.Value(-2.5)))
    assert list(records.values()) == ["{  | data -2.5000 | grad 0.0000 }"] and not ops
    assert not edges


def test_draw_dot_node_names_are_positions() -> None:
    out = lecture_expression(micrograd_c.engine.Value)
    dot = draw_dot(out)
    records, ops, _ = parse(dot)
    assert sorted(records, key=int) == [str(k) for k in range(7)]
    assert records["0"] == "{ L | data -8.0000 | grad 0.0000 }"  # the root comes first
    made = {name for name, text in records.items() if label_of(text) in ("L", "d", "e")}
    assert set(ops) == {name + "op" for name in made}
    assert draw_dot(out).source == dot.source  # stable across calls


def test_draw_dot_custom_op_text_is_shown_verbatim() -> None:
    a, b = micrograd_c.engine.Value(1.0, label="a"), micrograd_c.engine.Value(2.0, label="b")
    out = micrograd_c.engine.Value(3.0, (a, b), "f:x|<y>", label="{l|b}")
    records, ops, _ = parse(draw_dot(out))
    assert records["0"] == r"{ \{l\|b\} | data 3.0000 | grad 0.0000 }"  # record syntax escaped
    assert ops == {"0op": "f:x|<y>"}  # the name is the position: the ':' is no port


def test_draw_dot_format_and_rankdir() -> None:
    out = lecture_expression(micrograd_c.engine.Value)
    dot = draw_dot(out, format="png", rankdir="TB")
    assert isinstance(dot, graphviz.Digraph) and dot.format == "png"
    assert dot.graph_attr == {"rankdir": "TB"}
    assert draw_dot(out).format == "svg" and draw_dot(out).graph_attr == {"rankdir": "LR"}
    with pytest.raises(ValueError, match="rankdir"):
        draw_dot(out, rankdir="XY")


def chain(n: int) -> micrograd_c.engine.Value:
    """A graph of 2n + 1 Values: n times (x * Value(const))."""
    x = micrograd_c.engine.Value(1.0)
    for _ in range(n):
        x = x * 1.0001
    return x


def test_draw_dot_refuses_a_graph_above_max_nodes() -> None:
    root = chain(300)  # 601 Values
    handles = lib.mg_handle_count()
    with pytest.raises(ValueError, match=r"601 nodes, more than max_nodes=500.*max_nodes=601"):
        draw_dot(root)
    with pytest.raises(ValueError, match=r"601 nodes, more than max_nodes=600"):
        draw_dot(root, max_nodes=600)
    with pytest.raises(ValueError, match=r"601 nodes, more than max_nodes=10"):
        trace(root, max_nodes=10)
    assert lib.mg_handle_count() == handles  # a refusal takes no handles
    records, ops, edges = parse(draw_dot(root, max_nodes=601))
    assert len(records) == 601 and len(ops) == 300 and len(edges) == 900
    assert len(trace(root, max_nodes=601)[0]) == len(trace(root)[0]) == 601
    assert len(parse(draw_dot(chain(10), max_nodes=10**12))[0]) == 21  # no 10**12 buffer


@pytest.mark.parametrize("max_nodes", [0, -1])
def test_max_nodes_must_be_positive(max_nodes: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        draw_dot(micrograd_c.engine.Value(1.0), max_nodes=max_nodes)


def test_draw_dot_without_graphviz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "graphviz", None)  # import graphviz now fails
    with pytest.raises(ImportError, match=r'pip install "micrograd_c\[viz\]".*dot') as info:
        draw_dot(micrograd_c.engine.Value(1.0))
    assert "apt-get install graphviz" in str(info.value)


def test_draw_dot_renders_to_svg() -> None:
    if shutil.which("dot") is None:
        pytest.fail(
            "Graphviz's dot program is missing: apt-get install graphviz "
            "(or brew install graphviz) to run the rendering tests"
        )
    out = lecture_neuron(micrograd_c.engine.Value)
    out.backward()
    svg = draw_dot(out).pipe(format="svg")
    assert isinstance(svg, bytes) and (svg.startswith(b"<?xml") or b"<svg" in svg)
    for text in (
        b">x1*w1 + x2*w2</text>",
        b">tanh</text>",
        b">grad 1.0000</text>",
        b">data 0.7071</text>",
    ):
        assert text in svg


# -- handles ------------------------------------------------------------------------------


def handle_count() -> int:
    gc.collect()
    return int(lib.mg_handle_count())


def test_tracing_and_drawing_do_not_leak_handles() -> None:
    before = handle_count()
    a, b, c = (micrograd_c.engine.Value(x) for x in (2.0, -3.0, 10.0))
    out = (a * b + c) * micrograd_c.engine.Value(-2.0)  # a*b, +c and -2.0 have no Value
    with_graph = handle_count()
    assert with_graph == before + 4

    nodes, edges = trace(out)
    assert handle_count() == with_graph + 3  # one handle each for the nodes nobody held
    dot = draw_dot(out)
    del nodes, edges
    assert handle_count() == with_graph  # draw_dot keeps no Values: the Digraph is text
    del dot

    del a, b, c, out
    assert handle_count() == before  # and every reference it took was given back
