"""The lecture's neuron drawn with draw_dot, after backward(): data and grad of every Value.

    python examples/neuron_draw.py [out.svg]      (default: neuron.svg)

Needs the graphviz package (pip install "micrograd_c[viz]") and Graphviz's dot program
(apt-get install graphviz, brew install graphviz).
"""

from __future__ import annotations

import sys
from pathlib import Path

from micrograd_c.viz import draw_dot, trace

from neuron_manual_backprop import neuron  # the same neuron, labels and all (a sibling script)


def main(argv: list[str]) -> int:
    out = Path(argv[1] if len(argv) > 1 else "neuron.svg")

    o = neuron()["o"]
    o.backward()

    dot = draw_dot(o)  # a graphviz.Digraph; in a notebook it displays itself
    out.write_bytes(dot.pipe(format="svg"))
    nodes, edges = trace(o)
    print(
        f"drew o = tanh(x1*w1 + x2*w2 + b) = {o.data:.4f}: {len(nodes)} values, {len(edges)} edges"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
