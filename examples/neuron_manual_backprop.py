"""The lecture's single neuron, backpropagated by hand, then by backward().

    python examples/neuron_manual_backprop.py

o = tanh(x1*w1 + x2*w2 + b).  First the gradients are filled in the way the lecture does it
before writing backward(): set o.grad = 1.0, then call each node's _backward() from the output
back to the inputs (reverse topological order).  Then a fresh copy of the neuron runs
o.backward(), and the two sets of gradients must agree.
"""

from __future__ import annotations

import sys

from micrograd_c.engine import Value


def neuron() -> dict[str, Value]:
    """The lecture's neuron, every Value labelled; returns them by label."""
    x1 = Value(2.0, label="x1")
    x2 = Value(0.0, label="x2")
    w1 = Value(-3.0, label="w1")
    w2 = Value(1.0, label="w2")
    b = Value(6.8813735870195432, label="b")  # chosen so that o comes out as 1/sqrt(2)
    x1w1 = x1 * w1
    x1w1.label = "x1*w1"
    x2w2 = x2 * w2
    x2w2.label = "x2*w2"
    x1w1x2w2 = x1w1 + x2w2
    x1w1x2w2.label = "x1*w1 + x2*w2"
    n = x1w1x2w2 + b
    n.label = "n"
    o = n.tanh()
    o.label = "o"
    return {v.label: v for v in (x1, x2, w1, w2, b, x1w1, x2w2, x1w1x2w2, n, o)}


def topological_order(root: Value) -> list[Value]:
    """Every Value root depends on, each after its children (the lecture's build_topo)."""
    topo: list[Value] = []
    visited: set[Value] = set()

    def build_topo(v: Value) -> None:
        if v not in visited:
            visited.add(v)
            for child in v._prev:
                build_topo(child)
            topo.append(v)

    build_topo(root)
    return topo


def main() -> int:
    manual = neuron()
    o = manual["o"]
    print(f"forward: o = tanh(n) = {o.data:.4f}")

    o.grad = 1.0  # do/do
    for node in reversed(topological_order(o)):
        node._backward()  # adds its share into its children's grads; a leaf's does nothing

    automatic = neuron()
    automatic["o"].backward()

    print(f"{'value':>14} {'data':>9} {'manual grad':>12} {'backward()':>11}")
    mismatches = 0
    for label, v in manual.items():
        auto_grad = automatic[label].grad
        mismatches += v.grad != auto_grad
        print(f"{label:>14} {v.data:9.4f} {v.grad:12.4f} {auto_grad:11.4f}")
    if mismatches:
        print(f"{mismatches} gradients differ between manual backprop and backward()")
        return 1
    print("manual backprop and backward() agree on every gradient")
    return 0


if __name__ == "__main__":
    sys.exit(main())
