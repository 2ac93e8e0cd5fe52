"""Shared helpers of the benchmark suite: the engines, the sizes, the workloads, the checks.

Each workload is plain micrograd user code that takes the engine as an argument, so micrograd
and micrograd_c build the same graph node for node and the timings compare like with like.
Nothing here times anything: test_bench.py does, and report.py turns the timings into a table.
"""

from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import sys
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import micrograd.engine
import micrograd.nn
import numpy
import pytest
from sklearn.datasets import make_moons

import micrograd_c.engine
import micrograd_c.nn
from micrograd_c._core import lib


class Engine(NamedTuple):
    name: str
    Value: Callable[..., Any]
    MLP: Callable[..., Any]


ENGINES: dict[str, Engine] = {
    "micrograd": Engine("micrograd", micrograd.engine.Value, micrograd.nn.MLP),
    "micrograd_c": Engine("micrograd_c", micrograd_c.engine.Value, micrograd_c.nn.MLP),
}
OTHER = {"micrograd": "micrograd_c", "micrograd_c": "micrograd"}


@dataclass(frozen=True)
class Fingerprint:
    """What a benchmarked run computed, to check both engines computed the same thing.

    `exact` holds forward values (micrograd_c's are bit-identical to micrograd's) and gradients
    that are a single product; `close` holds gradients summed over many paths, which micrograd
    adds up in its topological order and micrograd_c in index order, so they may differ in the
    last bits.
    """

    exact: tuple[Any, ...]
    close: tuple[float, ...] = ()

    def assert_matches(self, other: Fingerprint) -> None:
        assert self.exact == other.exact
        assert self.close == pytest.approx(other.close, rel=1e-9, abs=1e-12)


@dataclass(frozen=True)
class Sizes:
    ops: int  # op: operators in the x = x*b + c expression (two per step)
    products: int  # backward: products a[i]*b[i] in the balanced sum (4n - 1 nodes)
    moons: int  # mlp_step and memory: make_moons points per step
    deep: tuple[int, ...]  # deep: chains only micrograd_c can backprop
    recursion_depth: int  # deep: a chain micrograd's recursive sort cannot handle
    train_steps: int  # memory: steps of the flatness run
    memory_steps: tuple[int, int]  # memory: warm-up and sampled steps of the bytes-per-node run


FULL = Sizes(
    ops=100_000,
    products=2**18,
    moons=100,
    deep=(1_000_000, 10_000_000),
    recursion_depth=5_000,
    train_steps=1_000,
    memory_steps=(50, 200),
)
QUICK = Sizes(
    ops=2_000,
    products=2**8,
    moons=10,
    deep=(10_000, 100_000),
    recursion_depth=5_000,
    train_steps=20,
    memory_steps=(5, 10),
)


class Agreement:
    """Fingerprints of the benchmarked runs, by case and engine.

    A case's test records what its engine computed and checks it against the other engine's
    fingerprint: the one recorded by the other engine's test of the case when that ran first,
    or else one computed now, untimed.  So each engine's run is checked against the other's,
    and micrograd's slow runs are not repeated.
    """

    def __init__(self) -> None:
        self._seen: dict[str, dict[str, Fingerprint]] = {}

    def check(
        self, case: str, engine: Engine, mine: Fingerprint, compute: Callable[[Engine], Fingerprint]
    ) -> None:
        seen = self._seen.setdefault(case, {})
        seen[engine.name] = mine
        other = OTHER[engine.name]
        if other not in seen:
            seen[other] = compute(ENGINES[other])
        mine.assert_matches(seen[other])


# -- op: x = x*b + c ---------------------------------------------------------------------------

# x stays in (0.5, 1): no overflow, no denormals, the same work at every step.
X0, B, C = 0.5, 0.999, 0.001


def chain_operands(engine: Engine, operand: str) -> tuple[Any, Any, Any]:
    """The start of the op chain and its operands b, c: Values, or plain floats."""
    x = engine.Value(X0)
    if operand == "value":
        return x, engine.Value(B), engine.Value(C)
    return x, B, C


def multiply_add(x: Any, b: Any, c: Any, steps: int) -> Any:
    """`steps` times x = x*b + c: two operators (two nodes, plus a leaf each for floats)."""
    for _ in range(steps):
        x = x * b + c
    return x


def op_fingerprint(x: Any) -> Fingerprint:
    return Fingerprint(exact=(x.data,))


# -- numpy: numpy scalars against Python numbers ------------------------------------------------

# What the notebook's numpy inputs meet: each operator with its number on either side, and
# Value(x).  (Subtraction and division are composed from + and *, as in micrograd.)
NUMPY_EXPRESSIONS = ("a + x", "x + a", "a * x", "x * a", "Value(x)")
NUMBERS = {
    "float": lambda: 0.75,
    "int": lambda: 3,
    "numpy.float64": lambda: numpy.float64(0.75),
    "numpy.int64": lambda: numpy.int64(3),
}


def repeated(expression: str) -> Callable[[Any, Any, int], Any]:
    """A function running `expression` (over a Value `a` and a number `x`) n times, with nothing
    else in its loop: a lambda call per evaluation would add the same cost to both sides of a
    comparison and make their ratio look closer to 1."""
    namespace = {"Value": micrograd_c.engine.Value}
    source = (
        f"def run(a, x, n):\n    for _ in range(n):\n        out = {expression}\n    return out"
    )
    exec(source, namespace)
    return namespace["run"]  # type: ignore[no-any-return]


# -- backward: a wide, shallow graph micrograd can still backprop ------------------------------


def balanced_sum(terms: Sequence[Any]) -> Any:
    """terms summed pairwise, level by level: depth log2(n), so micrograd's recursive
    topological sort stays far from the recursion limit."""
    level = list(terms)
    while len(level) > 1:
        pairs = [level[i] + level[i + 1] for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            pairs.append(level[-1])
        level = pairs
    return level[0]


@dataclass
class WideGraph:
    """sum(a[i] * b[i]) as a balanced tree: 2n leaves, n products, n - 1 sums."""

    root: Any
    a: list[Any]
    b: list[Any]


def wide_numbers(products: int) -> tuple[list[float], list[float]]:
    rng = random.Random(products)
    return (
        [rng.uniform(-1, 1) for _ in range(products)],
        [rng.uniform(-1, 1) for _ in range(products)],
    )


def wide_graph(engine: Engine, products: int) -> WideGraph:
    xs, ys = wide_numbers(products)
    a = [engine.Value(x) for x in xs]
    b = [engine.Value(y) for y in ys]
    return WideGraph(balanced_sum([ai * bi for ai, bi in zip(a, b)]), a, b)


def backward(graph: Any) -> Any:
    """The timed part of the backward and deep groups."""
    graph.root.backward()
    return graph


def wide_fingerprint(graph: WideGraph) -> Fingerprint:
    # Every path from the root to a leaf is + nodes then one *: grads are single products.
    return Fingerprint(
        exact=(graph.root.data, tuple(v.grad for v in graph.a), tuple(v.grad for v in graph.b))
    )


# -- deep: a chain micrograd cannot backprop ---------------------------------------------------


@dataclass
class Chain:
    """x = x + one, `depth` times: depth + 2 nodes, every answer an exact integer."""

    root: Any
    start: Any
    one: Any
    depth: int


def chain_of_adds(engine: Engine, depth: int) -> Chain:
    start, one = engine.Value(0.0), engine.Value(1.0)
    x = start
    for _ in range(depth):
        x = x + one
    return Chain(x, start, one, depth)


def backward_outcome(chain: Chain) -> tuple[str, Chain]:
    """'ok', or 'RecursionError' where micrograd's recursive topological sort gives up."""
    try:
        chain.root.backward()
    except RecursionError:
        return "RecursionError", chain
    return "ok", chain


def chain_answers(chain: Chain) -> tuple[float, float, float]:
    """The chain's value and the grads of its leaves: (depth, 1, depth) when right."""
    return chain.root.data, chain.start.grad, chain.one.grad


# -- mlp_step: micrograd's moons demo ----------------------------------------------------------


class Moons:
    """micrograd's demo notebook: MLP(2, [16, 16, 1]) on make_moons(n, noise=0.1) with the SVM
    max-margin loss plus 1e-4 L2 regularisation, trained by SGD.

    inputs="notebook" is the notebook verbatim: numpy X and y, so every `Value(x)` gets a numpy
    float64 and every `-yi * scorei` a numpy int64.  inputs="floats" feeds Python floats and ints
    (X.tolist()), the kinder case for both engines.
    """

    def __init__(self, engine: Engine, samples: int, inputs: str = "notebook") -> None:
        X, y = make_moons(n_samples=samples, noise=0.1, random_state=1337)
        self.engine = engine
        y = y * 2 - 1
        self.X: Any = X if inputs == "notebook" else X.tolist()
        self.y: Any = y if inputs == "notebook" else y.tolist()
        random.seed(1337)
        self.model = engine.MLP(2, [16, 16, 1])
        self.initial = [p.data for p in self.model.parameters()]
        self.graph: tuple[Any, list[Any]] | None = None  # build_once()'s loss and scores

    def reset(self) -> None:
        """Back to the seeded weights, keeping the model object (and its caches)."""
        for p, data in zip(self.model.parameters(), self.initial):
            p.data = data

    def loss(self) -> tuple[Any, float]:
        inputs = [list(map(self.engine.Value, xrow)) for xrow in self.X]
        scores = list(map(self.model, inputs))
        losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(self.y, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        alpha = 1e-4
        reg_loss = alpha * sum(p * p for p in self.model.parameters())
        total_loss = data_loss + reg_loss
        accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(self.y, scores)]
        return total_loss, sum(accuracy) / len(accuracy)

    def step(self, k: int = 0, steps: int = 100) -> tuple[Any, float]:
        """One training step of the notebook's loop (step k of `steps`)."""
        total_loss, acc = self.loss()
        self.model.zero_grad()
        total_loss.backward()
        learning_rate = 1.0 - 0.9 * k / steps
        for p in self.model.parameters():
            p.data -= learning_rate * p.grad
        return total_loss, acc

    def build_once(self) -> None:
        """micrograd_c only: the loss graph built once, for replay_step() to re-run."""
        inputs = [list(map(self.engine.Value, xrow)) for xrow in self.X]
        scores = list(map(self.model, inputs))
        losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(self.y, scores)]
        data_loss = sum(losses) * (1.0 / len(losses))
        alpha = 1e-4
        reg_loss = alpha * sum(p * p for p in self.model.parameters())
        self.graph = (data_loss + reg_loss, scores)

    def replay_step(self, k: int = 0, steps: int = 100) -> tuple[Any, float]:
        """step() with the graph built once: forward() re-runs it from the parameters' data
        (the inputs are the same points every step, so no leaf needs feeding)."""
        assert self.graph is not None, "build_once() first"
        total_loss, scores = self.graph
        total_loss.forward()
        accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(self.y, scores)]
        self.model.zero_grad()
        total_loss.backward()
        learning_rate = 1.0 - 0.9 * k / steps
        for p in self.model.parameters():
            p.data -= learning_rate * p.grad
        return total_loss, sum(accuracy) / len(accuracy)

    def fingerprint(self, total_loss: Any, acc: float) -> Fingerprint:
        params = self.model.parameters()
        return Fingerprint(
            exact=(total_loss.data, acc),
            close=tuple(p.grad for p in params) + tuple(p.data for p in params),
        )


def mlp_nodes(plan: Any) -> int:
    """The nodes one call of a planned model makes in C: per neuron of a layer of n inputs,
    on Values, n products, n sums, and a ReLU if nonlin."""
    return sum(
        plan.sizes[layer + 1] * (2 * plan.sizes[layer] + bool(plan.nonlin[layer]))
        for layer in range(plan.nlayers)
    )


# -- floor: the notebook loop with no engine under it -----------------------------------------


class FloorValue:
    """The least a Value that is a Python object can cost: each operator makes one __slots__
    object holding its result.  No graph, no C call, no finalizer; numpy defers to it as it
    does to micrograd_c's Value.  The notebook loop run on it costs what the loop's own Python
    and numpy cost, plus one object per operator: the floor of any engine with Python Values.
    (It computes forward values only, and gradients not at all: a floor, not an engine.)"""

    __slots__ = ("data", "grad")
    __array_ufunc__ = None

    def __init__(self, data: Any) -> None:
        self.data = data if type(data) is float else float(data)
        self.grad = 0.0

    def __add__(self, other: Any) -> FloorValue:
        return FloorValue(self.data + (other.data if type(other) is FloorValue else other))

    def __mul__(self, other: Any) -> FloorValue:
        return FloorValue(self.data * (other.data if type(other) is FloorValue else other))

    __radd__ = __add__
    __rmul__ = __mul__

    def __neg__(self) -> FloorValue:
        return self * -1

    def relu(self) -> FloorValue:
        return FloorValue(self.data if self.data > 0 else 0.0)

    def backward(self) -> None:
        pass

    forward = backward


class FloorMLP(micrograd_c.nn.MLP):
    """micrograd_c's MLP, with FloorValue parameters, whose call does only what every call of
    micrograd_c's must do in Python before its C part: check the model against its plan, so
    that a change made by any path is seen (nn._fits, on a twin micrograd_c model of the same
    shape).  Its output is one FloorValue."""

    def __init__(self, nin: int, nouts: list[int]) -> None:
        super().__init__(nin, nouts)
        for layer in self.layers:
            for n in layer.neurons:
                n.w = [FloorValue(w.data) for w in n.w]
                n.b = FloorValue(0.0)
        self.twin = micrograd_c.nn.MLP(nin, nouts)
        self.twin([micrograd_c.engine.Value(0.0)] * nin)  # packs its plan
        self.plan = micrograd_c.nn._plans[id(self.twin)]
        self.checks = 0

    def __call__(self, x: Any) -> FloorValue:  # type: ignore[override]
        assert self.plan is not None and micrograd_c.nn._fits(self.plan, self.twin)
        self.checks += 1
        return FloorValue(0.5)

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = 0.0


FLOOR = Engine("floor", FloorValue, FloorMLP)


# -- mlp_call: one model call, as the notebook's loop makes it -------------------------------


class MlpCalls:
    """The notebook's forward pass alone: MLP(2, [16, 16, 1]) called on each of `samples`
    make_moons points, given as `list(map(Value, xrow))` the way demo.ipynb gives them."""

    def __init__(self, engine: Engine, samples: int) -> None:
        moons = Moons(engine, samples)
        self.model = moons.model
        self.inputs = [list(map(engine.Value, xrow)) for xrow in moons.X]

    def run(self) -> list[Any]:
        return list(map(self.model, self.inputs))

    def fingerprint(self, scores: list[Any]) -> Fingerprint:
        return Fingerprint(exact=tuple(score.data for score in scores))


# -- memory ------------------------------------------------------------------------------------


def count_nodes(root: Any) -> int:
    """Nodes reachable from root through _prev (iteratively: the graphs are deep)."""
    seen = {root}
    stack = [root]
    while stack:
        for child in stack.pop()._prev:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return len(seen)


def traced(build: Callable[[], Any]) -> tuple[Any, int]:
    """build()'s result and the Python heap bytes it holds (tracemalloc; C malloc is unseen)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()  # no collection of older garbage during the build
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = build()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
        if was_enabled:
            gc.enable()
    return result, after - before


def arena() -> dict[str, int]:
    """micrograd_c's arena: node slots in use (live or not yet reclaimed), allocated, handles,
    the bytes it holds (node slots, handles, texts), and its compactions, resizes and time
    spent on both so far."""
    return {
        "nodes": lib.mg_node_count(),
        "capacity": lib.mg_capacity(),
        "handles": lib.mg_handle_count(),
        "arena_bytes": lib.mg_arena_bytes(),
        "compactions": lib.mg_compactions(),
        "resizes": lib.mg_arena_resizes(),
        "reclaim_ns": lib.mg_reclaim_nanoseconds(),
    }


def training_memory_fresh(samples: int, warmup: int, steps: int) -> dict[str, Any]:
    """training_memory in a new process: the arena as a program that only trains has it.  (In
    this process the earlier cases held up to a million Values at once, and the handle table,
    12 bytes a slot, keeps the size of the most Values ever alive together.)"""
    code = (
        "import json, sys, mgbench\n"
        "moons = mgbench.Moons(mgbench.ENGINES['micrograd_c'], int(sys.argv[1]))\n"
        "print(json.dumps(mgbench.training_memory(moons, int(sys.argv[2]), int(sys.argv[3]))))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(samples), str(warmup), str(steps)],
        cwd=os.path.dirname(os.path.abspath(__file__)),
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def training_memory(moons: Moons, warmup: int, steps: int) -> dict[str, Any]:
    """The arena in micrograd_c's steady state of the moons training loop: `warmup` steps, then
    `steps` steps sampled after each.  Bytes are the most the arena held, per node of the peak
    live set (one step's graph, parameters included: all that is alive at once here)."""
    for k in range(warmup):
        moons.step(k, warmup + steps)
    total_loss, _ = moons.loss()
    peak_live = count_nodes(total_loss)
    del total_loss
    start = arena()
    most_bytes = most_capacity = 0
    for k in range(steps):
        moons.step(warmup + k, warmup + steps)
        most_bytes = max(most_bytes, lib.mg_arena_bytes())
        most_capacity = max(most_capacity, lib.mg_capacity())
    end = arena()
    compactions = end["compactions"] - start["compactions"]
    return {
        "peak_live": peak_live,
        "arena_bytes": most_bytes,
        "capacity": most_capacity,
        "arena_bytes_per_node": most_bytes / peak_live,
        "capacity_per_node": most_capacity / peak_live,
        "compactions_per_step": compactions / steps,
        "resizes": end["resizes"] - start["resizes"],
        "reclaim_ms_per_step": (end["reclaim_ns"] - start["reclaim_ns"]) / steps / 1e6,
    }


def rss_bytes() -> int | None:
    """Resident set size now (Linux); None where /proc is not there."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return None
