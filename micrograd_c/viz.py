"""The graph picture of micrograd's trace_graph notebook and Karpathy's lecture.

`trace(root)` returns the lecture's `(nodes, edges)`; `draw_dot(root)` returns its graphviz
`Digraph`: a record `{ label | data | grad }` per Value and, for a Value an operation made, an
oval naming the operation.  The walk over the graph is one C call (`mg_trace`), not Python
recursion over `_prev`, so deep graphs do not hit the recursion limit.

graphviz is an optional extra: ``pip install "micrograd_c[viz]"``; rendering also needs
Graphviz's ``dot`` program.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING

from micrograd_c._core import check, ffi, lib
from micrograd_c.engine import Value, _shown_value

if TYPE_CHECKING:
    import graphviz

__all__ = ["trace", "draw_dot"]

_RANKDIRS = ("LR", "TB", "RL", "BT")


def _walk(root: Value, max_nodes: int | None) -> tuple[list[Value], list[tuple[int, int]]]:
    """The Values behind root (root first) and the edges between them, as (child, parent)
    positions in that list, each edge once.  Raises ValueError past max_nodes Values."""
    if not isinstance(root, Value):
        raise TypeError(f"expected a micrograd_c Value, not {type(root).__name__}")
    if max_nodes is None:
        capacity = 0  # this first call only counts
    else:
        max_nodes = operator.index(max_nodes)
        if max_nodes < 1:
            raise ValueError(f"max_nodes must be at least 1, got {max_nodes}")
        # The arena holds every node root reaches, so its size bounds the trace: no need to
        # allocate room for a huge max_nodes.
        capacity = min(max_nodes, lib.mg_node_count())
    while True:
        nodes = ffi.new("mg_handle[]", capacity)
        parent_pos = ffi.new("int32_t[]", 2 * capacity)
        count = check(lib.mg_trace(root._h, capacity, nodes, parent_pos))
        if max_nodes is not None and count > max_nodes:
            raise ValueError(
                f"the graph behind this Value has {count} nodes, more than max_nodes={max_nodes}; "
                f"pass max_nodes={count} or more to go ahead (Graphviz gets slow on big graphs)"
            )
        if count <= capacity:
            break
        capacity = count  # counted only: ask again with room for all of them
    # New references, one per node: the root's goes back (the caller's Value is the root);
    # every other node is the one Value _prev shows for it, as the lecture's code keys on id().
    lib.mg_release_now(nodes[0])
    values = [root] + [_shown_value(nodes[k]) for k in range(1, count)]
    edges: dict[tuple[int, int], None] = {}  # ordered set: a + a has one edge, as a set gives
    for k in range(count):
        for p in (parent_pos[2 * k], parent_pos[2 * k + 1]):
            if p >= 0:
                edges[p, k] = None
    return values, list(edges)


def trace(root: Value, max_nodes: int | None = None) -> tuple[set[Value], set[tuple[Value, Value]]]:
    """The lecture's trace: every Value root depends on (root included), and the
    (child, parent) pair for each edge of the graph.  max_nodes=None means no limit."""
    values, edges = _walk(root, max_nodes)
    return set(values), {(values[child], values[parent]) for child, parent in edges}


def draw_dot(
    root: Value, format: str = "svg", rankdir: str = "LR", max_nodes: int = 500
) -> graphviz.Digraph:
    """The lecture's picture of the graph behind root, as a graphviz Digraph.

    format: the output format for render()/pipe() (svg, png, ...).
    rankdir: LR (left to right), TB (top to bottom), RL or BT.
    max_nodes: refuse bigger graphs (ValueError), which Graphviz lays out slowly and nobody can
    read; raise it to draw one anyway.
    """
    try:
        import graphviz
    except ImportError:
        raise ImportError(
            'draw_dot needs the graphviz package: pip install "micrograd_c[viz]". Rendering '
            "also needs Graphviz's dot program (apt-get install graphviz, brew install graphviz)"
        ) from None
    if rankdir not in _RANKDIRS:
        raise ValueError(f"rankdir must be one of {', '.join(_RANKDIRS)}, got {rankdir!r}")
    values, edges = _walk(root, max_nodes)
    dot = graphviz.Digraph(format=format, graph_attr={"rankdir": rankdir})
    # Node names are positions in the trace: stable, unique, and free of user text.  The
    # lecture names an op node id(n) + n._op; a custom op text can hold ':' (read by Graphviz as
    # a port) or begin with a digit, so here it is position + "op".
    into: list[str] = []  # the node an edge into values[k] points at
    for k, n in enumerate(values):
        uid = str(k)
        # (UP031: the lecture's own %-format for the record, kept as the lecture writes it.)
        label = "{ %s | data %.4f | grad %.4f }" % (_record_text(n.label), n.data, n.grad)  # noqa: UP031
        dot.node(name=uid, label=label, shape="record")
        op = n._op
        if op:  # the lecture's test: a Value an operation made gets an op node
            dot.node(name=uid + "op", label=graphviz.nohtml(op.replace("\\", "\\\\")))
            dot.edge(uid + "op", uid)
            into.append(uid + "op")
        else:
            into.append(uid)
    for child, parent in edges:
        dot.edge(str(child), into[parent])
    return dot


def _record_text(text: str) -> str:
    """text shown as it is inside a record field, where | { } < > and \\ are syntax."""
    for char in "\\|{}<>":
        text = text.replace(char, "\\" + char)
    return text
