"""micrograd against micrograd_c, side by side in one run.

Each case runs once per engine (the `engine` parameter, see conftest.py) in a pytest-benchmark
group: op, backward, mlp_step, mlp_call, deep, memory.  Every round times one call on fresh
inputs made by an untimed setup.  extra_info["count"] is what one call does ("per" says of what:
ops, nodes, steps), so report.py can print ns per op or per node.  After timing, each case checks
that the engines computed the same thing; that check is all a quick run (--benchmark-disable)
asserts.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Callable

import pytest

import micrograd_c
import micrograd_c.nn
from micrograd_c._core import ffi, lib

from mgbench import (
    ENGINES,
    FLOOR,
    NUMBERS,
    NUMPY_EXPRESSIONS,
    X0,
    Agreement,
    B,
    C,
    Chain,
    Engine,
    Fingerprint,
    MlpCalls,
    Moons,
    Sizes,
    arena,
    backward,
    backward_outcome,
    chain_answers,
    chain_of_adds,
    chain_operands,
    count_nodes,
    mlp_nodes,
    multiply_add,
    op_fingerprint,
    repeated,
    rss_bytes,
    traced,
    training_memory_fresh,
    wide_fingerprint,
    wide_graph,
)

# Timed rounds per engine (after one warm-up round): micrograd's are seconds long, so fewer.
ROUNDS = {
    "op": {"micrograd": 5, "micrograd_c": 20},
    "backward": {"micrograd": 3, "micrograd_c": 10},
    "numpy": {"micrograd_c": 20},
    "mlp_step": {"micrograd": 5, "micrograd_c": 30},
    "mlp_replay": {"micrograd_c": 100},
    "mlp_floor": {"floor": 30, "micrograd_c": 100},
    "mlp_call": {"micrograd": 3, "micrograd_c": 200},
    "mlp_call_after": {"micrograd_c": 200},
    "deep": {"micrograd": 1, "micrograd_c": 3},
    "memory": {"micrograd": 3, "micrograd_c": 20},
}


@contextmanager
def python_gc(gc_mode: str) -> Iterator[None]:
    """Python's cyclic GC as users have it (gc_on), or disabled around the timed calls."""
    if gc_mode == "gc_on":
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def collect_garbage(*_: Any) -> None:
    """Teardown for GC-off rounds: free micrograd's cyclic graphs outside the timing."""
    gc.collect()


def teardown_for(engine: Engine, gc_mode: str) -> Callable[..., None] | None:
    """collect_garbage for micrograd's GC-off rounds, which leave cyclic garbage.
    micrograd_c's leave none (its proxies form no cycles), so a collection between its rounds
    would only evict the caches and time a cold step (~30% slower), which no GC-off loop of
    micrograd_c's has."""
    return collect_garbage if gc_mode == "gc_off" and engine.name == "micrograd" else None


@pytest.mark.benchmark(group="op")
@pytest.mark.parametrize("gc_mode", ["gc_on", "gc_off"])
@pytest.mark.parametrize("operand", ["value", "float"])
def test_op(
    benchmark: Any, engine: Engine, operand: str, gc_mode: str, sizes: Sizes, agreement: Agreement
) -> None:
    """Building x = x*b + c with Python operators: b and c Values, or floats (then each operator
    makes a leaf for its constant, as micrograd's Value(other) does)."""
    steps = sizes.ops // 2
    benchmark.extra_info.update(count=2 * steps, per="op")
    with python_gc(gc_mode):
        x = benchmark.pedantic(
            multiply_add,
            setup=lambda: (chain_operands(engine, operand) + (steps,), {}),
            teardown=teardown_for(engine, gc_mode),
            rounds=ROUNDS["op"][engine.name],
            warmup_rounds=1,
        )
    assert x.data == multiply_add(X0, B, C, steps)  # the same float operations in plain Python
    agreement.check(
        f"op-{operand}",
        engine,
        op_fingerprint(x),
        lambda other: op_fingerprint(multiply_add(*chain_operands(other, operand), steps)),
    )


@pytest.mark.benchmark(group="numpy")
@pytest.mark.parametrize("number", list(NUMBERS))
@pytest.mark.parametrize("expression", NUMPY_EXPRESSIONS)
def test_numpy_scalar(benchmark: Any, expression: str, number: str, sizes: Sizes) -> None:
    """An operator, or Value(x), with a Python number or a numpy scalar, GC off (micrograd_c
    alone): report.py sets each numpy scalar against the Python number of its kind."""
    engine = ENGINES["micrograd_c"]
    run, a, x = repeated(expression), engine.Value(0.5), NUMBERS[number]()
    benchmark.extra_info.update(count=sizes.ops, per="op", engine=engine.name)
    with python_gc("gc_off"):
        out = benchmark.pedantic(
            run, args=(a, x, sizes.ops), rounds=ROUNDS["numpy"][engine.name], warmup_rounds=1
        )
    plain = float(x) if "float" in number else int(x)
    assert type(out) is engine.Value and out.data == repeated(expression)(a, plain, 1).data


@pytest.mark.benchmark(group="backward")
def test_backward(benchmark: Any, engine: Engine, sizes: Sizes, agreement: Agreement) -> None:
    """One backward() over a fresh ~1M-node graph: sum(a[i]*b[i]) as a balanced tree, which
    micrograd's recursive topological sort can handle (depth ~20)."""
    benchmark.extra_info.update(count=4 * sizes.products - 1, per="node")
    graph = benchmark.pedantic(
        backward,
        setup=lambda: ((wide_graph(engine, sizes.products),), {}),
        rounds=ROUNDS["backward"][engine.name],
        warmup_rounds=1,
    )
    assert [v.grad for v in graph.a] == [v.data for v in graph.b]  # d(a*b)/da = b, exactly
    agreement.check(
        "backward",
        engine,
        wide_fingerprint(graph),
        lambda other: wide_fingerprint(backward(wide_graph(other, sizes.products))),
    )


@pytest.mark.benchmark(group="mlp_step")
@pytest.mark.parametrize("gc_mode", ["gc_on", "gc_off"])
@pytest.mark.parametrize("inputs", ["notebook", "floats"])
def test_mlp_step(
    benchmark: Any, engine: Engine, gc_mode: str, inputs: str, sizes: Sizes, agreement: Agreement
) -> None:
    """The moons demo's training step: forward and loss over every point, zero_grad, backward,
    SGD.  Every round is step 0 from the seeded weights, on the same model object."""
    moons = Moons(engine, sizes.moons, inputs)
    benchmark.extra_info.update(count=1, per="step", points=sizes.moons)

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        moons.reset()
        return (), {}

    gc.collect()
    with python_gc(gc_mode):
        total_loss, acc = benchmark.pedantic(
            moons.step,
            setup=setup,
            teardown=teardown_for(engine, gc_mode),
            rounds=ROUNDS["mlp_step"][engine.name],
            warmup_rounds=1,
        )
    if engine.name == "micrograd_c":  # what teardown_for assumes: its steps left no cycles
        assert gc.collect() == 0

    def other_step(other: Engine) -> Fingerprint:
        other_moons = Moons(other, sizes.moons, inputs)
        return other_moons.fingerprint(*other_moons.step())

    agreement.check(f"mlp_step[{inputs}]", engine, moons.fingerprint(total_loss, acc), other_step)


@pytest.mark.benchmark(group="mlp_step")
def test_mlp_replay(benchmark: Any, sizes: Sizes, agreement: Agreement) -> None:
    """The moons training step with its graph built once and re-run by forward(): micrograd_c
    alone (micrograd has no forward()); report.py sets it against micrograd's mlp_step, GC on.
    Every round is step 0 from the seeded weights, on the same graph."""
    engine = ENGINES["micrograd_c"]
    moons = Moons(engine, sizes.moons)
    moons.build_once()
    benchmark.extra_info.update(count=1, per="step", points=sizes.moons, engine=engine.name)

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        moons.reset()
        return (), {}

    total_loss, acc = benchmark.pedantic(
        moons.replay_step, setup=setup, rounds=ROUNDS["mlp_replay"][engine.name], warmup_rounds=1
    )
    moons.reset()  # the rebuild loop's step 0 gives the very same bits
    rebuilt = Moons(engine, sizes.moons)
    assert moons.fingerprint(*moons.replay_step()) == rebuilt.fingerprint(*rebuilt.step())

    def other_step(other: Engine) -> Fingerprint:
        other_moons = Moons(other, sizes.moons)
        return other_moons.fingerprint(*other_moons.step())

    agreement.check("mlp_step", engine, moons.fingerprint(total_loss, acc), other_step)


@pytest.mark.benchmark(group="mlp_step")
def test_mlp_floor(benchmark: Any, sizes: Sizes) -> None:
    """The notebook loop's floor: the same step, GC on, on FLOOR, where each operator makes one
    __slots__ object and each model call only checks the model (no graph, no C call).  It
    counts the nodes micrograd_c's step makes, so that report.py can add their C cost at the
    mg_mlp and backward cases' ns per node, and set that sum against micrograd's step."""
    real = Moons(ENGINES["micrograd_c"], sizes.moons)
    total_loss, _ = real.step()
    plan = micrograd_c.nn._plans[id(real.model)]
    assert plan is not None, "the model must run in C"
    moons = Moons(FLOOR, sizes.moons)
    benchmark.extra_info.update(
        count=1,
        per="step",
        points=sizes.moons,
        engine=FLOOR.name,
        graph_nodes=count_nodes(total_loss),  # what backward() sweeps
        mlp_nodes=mlp_nodes(plan) * sizes.moons,  # what the model calls make in C
    )

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        moons.reset()
        moons.model.checks = 0
        return (), {}

    benchmark.pedantic(
        moons.step, setup=setup, rounds=ROUNDS["mlp_floor"][FLOOR.name], warmup_rounds=1
    )
    assert moons.model.checks == sizes.moons  # every call checked the model


@pytest.mark.benchmark(group="mlp_step")
def test_mlp_replay_floor(benchmark: Any, sizes: Sizes) -> None:
    """The replayed step's Python floor: mlp_replay's step on FLOOR, where forward() and
    backward() do nothing, so what is timed is the step's own lines (the accuracy, zero_grad
    and the update loop) on the cheapest Python Values.  report.py adds mlp_sweeps' C part."""
    moons = Moons(FLOOR, sizes.moons)
    moons.build_once()
    benchmark.extra_info.update(count=1, per="step", points=sizes.moons, engine=FLOOR.name)

    def setup() -> tuple[tuple[()], dict[str, Any]]:
        moons.reset()
        return (), {}

    total_loss, acc = benchmark.pedantic(
        moons.replay_step, setup=setup, rounds=ROUNDS["mlp_floor"][FLOOR.name], warmup_rounds=1
    )
    assert type(total_loss) is FLOOR.Value and 0 <= acc <= 1


@pytest.mark.benchmark(group="mlp_step")
def test_mlp_sweeps(benchmark: Any, sizes: Sizes) -> None:
    """The replayed step's C part alone: mg_forward and mg_backward of micrograd_c's built moons
    loss, with no Python around them but the two calls (micrograd_c alone)."""
    engine = ENGINES["micrograd_c"]
    moons = Moons(engine, sizes.moons)
    moons.build_once()
    assert moons.graph is not None
    root = moons.graph[0]._h
    benchmark.extra_info.update(count=1, per="step", points=sizes.moons, engine=engine.name)

    def sweeps() -> None:
        assert lib.mg_forward(root) == 0 and lib.mg_backward(root) == 0

    benchmark.pedantic(sweeps, rounds=ROUNDS["mlp_floor"][engine.name], warmup_rounds=1)
    # The sweeps are the replay step's own: the same loss and grads as replay_step() gives.
    moons.model.zero_grad()
    sweeps()
    loss, grads = moons.graph[0].data, [p.grad for p in moons.model.parameters()]
    replayed, _ = moons.replay_step()
    assert replayed.data == loss
    assert [p.grad for p in moons.model.parameters()] == grads


@pytest.mark.benchmark(group="mlp_call")
def test_mlp_call(benchmark: Any, engine: Engine, sizes: Sizes, agreement: Agreement) -> None:
    """The moons step's forward pass alone: one call of MLP(2, [16, 16, 1]) per point, on
    Values, GC on (report.py gives the time per call)."""
    calls = MlpCalls(engine, sizes.moons)
    benchmark.extra_info.update(count=sizes.moons, per="call")
    scores = benchmark.pedantic(calls.run, rounds=ROUNDS["mlp_call"][engine.name], warmup_rounds=1)
    agreement.check(
        "mlp_call",
        engine,
        calls.fingerprint(scores),
        lambda other: mlp_call_fingerprint(MlpCalls(other, sizes.moons)),
    )


@pytest.mark.benchmark(group="mlp_call")
def test_mlp_call_after_a_big_graph(benchmark: Any, sizes: Sizes) -> None:
    """mlp_call again, after a graph of ~4 x sizes.products nodes was built, differentiated and
    dropped, and the arena collected: nothing of it may slow later work.  (The handle table
    keeps its high-water mark, and compaction once walked all of it: calls that compact often,
    in a small arena, took 60x as long.)  report.py sets it against mlp_call."""
    engine = ENGINES["micrograd_c"]
    graph = wide_graph(engine, sizes.products)
    graph.root.backward()
    nodes = lib.mg_node_count()
    del graph
    micrograd_c.collect()
    calls = MlpCalls(engine, sizes.moons)
    benchmark.extra_info.update(count=sizes.moons, per="call", engine=engine.name, dropped=nodes)
    scores = benchmark.pedantic(
        calls.run, rounds=ROUNDS["mlp_call_after"][engine.name], warmup_rounds=1
    )
    assert calls.fingerprint(scores) == mlp_call_fingerprint(MlpCalls(engine, sizes.moons))


def mlp_call_fingerprint(calls: MlpCalls) -> Fingerprint:
    return calls.fingerprint(calls.run())


@pytest.mark.benchmark(group="mlp_call")
def test_mg_mlp(benchmark: Any, sizes: Sizes) -> None:
    """The same calls' C part alone: mg_mlp from the model's packed arrays, then the output's
    release (report.py gives the time per node it makes).  micrograd_c alone."""
    engine = ENGINES["micrograd_c"]
    calls = MlpCalls(engine, sizes.moons)
    scores = calls.run()  # packs the model's plan
    plan = micrograd_c.nn._plans[id(calls.model)]
    assert plan is not None, "the model must run in C"
    handles = [ffi.new("mg_handle[]", [v._h for v in x]) for x in calls.inputs]
    constants = ffi.new("double[]", plan.nin)
    out = ffi.new("mg_handle[]", plan.nout)

    def run() -> None:
        for inputs in handles:
            lib.mg_mlp(plan.nlayers, plan.sizes, plan.nonlin, plan.handles, inputs, constants, out)
            lib.mg_release(out[0])

    lib.mg_mlp(plan.nlayers, plan.sizes, plan.nonlin, plan.handles, handles[0], constants, out)
    assert lib.mg_data(out[0]) == scores[0].data
    lib.mg_release(out[0])
    nodes = mlp_nodes(plan)
    benchmark.extra_info.update(
        count=nodes * len(handles), per="node", engine=engine.name, nodes_per_call=nodes
    )
    benchmark.pedantic(run, rounds=ROUNDS["mlp_call"][engine.name], warmup_rounds=1)


@pytest.mark.benchmark(group="deep")
def test_deep_recursion_limit(benchmark: Any, engine: Engine, sizes: Sizes) -> None:
    """A chain of a few thousand nodes: past micrograd's recursion limit, easy for micrograd_c."""
    depth = sizes.recursion_depth
    benchmark.extra_info.update(count=depth + 2, per="node", depth=depth)
    outcome, chain = benchmark.pedantic(
        backward_outcome,
        setup=lambda: ((chain_of_adds(engine, depth),), {}),
        rounds=ROUNDS["deep"][engine.name],
    )
    benchmark.extra_info["outcome"] = outcome
    assert outcome == {"micrograd": "RecursionError", "micrograd_c": "ok"}[engine.name]
    if outcome == "ok":
        assert chain_answers(chain) == (depth, 1.0, depth)


@pytest.mark.benchmark(group="deep")
def test_deep_chain(benchmark: Any, depth: int) -> None:
    """Chains micrograd cannot backprop at all: micrograd_c alone (1M and 10M nodes deep)."""
    engine = ENGINES["micrograd_c"]
    benchmark.extra_info.update(count=depth + 2, per="node", depth=depth, engine=engine.name)
    rounds = ROUNDS["deep"][engine.name] if depth < 10**7 else 1  # 10M: seconds to build
    chain: Chain = benchmark.pedantic(
        backward, setup=lambda: ((chain_of_adds(engine, depth),), {}), rounds=rounds
    )
    assert chain_answers(chain) == (depth, 1.0, depth)


@pytest.mark.benchmark(group="memory")
def test_memory_moons_graph(
    benchmark: Any, engine: Engine, sizes: Sizes, agreement: Agreement
) -> None:
    """Bytes per node of the moons training loop (the figure), then one graph's build time.
    micrograd: the Python heap one step's graph holds, per node.  micrograd_c: the most the
    arena holds in the loop's steady state, per node alive at the peak (one step's graph),
    plus the Python objects the graph keeps; and the arena's compactions per step."""
    moons = Moons(engine, sizes.moons)
    moons.loss()  # a micrograd_c model packs its parameters' handles on its first call, once
    (total_loss, acc), python_bytes = traced(moons.loss)
    nodes = count_nodes(total_loss)
    info: dict[str, Any] = {
        "nodes": nodes,
        "python_bytes": python_bytes,
        "bytes_per_node": python_bytes / nodes,
    }
    agreement.check(
        "memory-moons",
        engine,
        Fingerprint(exact=(nodes, total_loss.data, acc)),
        lambda other: graph_fingerprint(Moons(other, sizes.moons)),
    )
    del total_loss
    if engine.name == "micrograd_c":
        loop = training_memory_fresh(sizes.moons, *sizes.memory_steps)
        assert loop["peak_live"] == nodes
        info.update(
            loop,
            python_bytes_per_node=python_bytes / nodes,
            bytes_per_node=loop["arena_bytes_per_node"] + python_bytes / nodes,
        )
    benchmark.extra_info.update(count=1, per="graph", **info)
    benchmark.pedantic(moons.loss, rounds=ROUNDS["memory"][engine.name], warmup_rounds=1)


def graph_fingerprint(moons: Moons) -> Fingerprint:
    total_loss, acc = moons.loss()
    return Fingerprint(exact=(count_nodes(total_loss), total_loss.data, acc))


@pytest.mark.benchmark(group="memory")
def test_memory_flat(benchmark: Any, sizes: Sizes) -> None:
    """The arena and the process over many training steps, sampled ten times for report.py to
    judge whether they stay flat.  Checked here: no Value leaks its handle, and from the second
    sample on the arena neither grows nor resizes.  micrograd_c alone: micrograd would need 20
    minutes for 1,000 steps."""
    engine = ENGINES["micrograd_c"]
    moons = Moons(engine, sizes.moons)
    steps = sizes.train_steps
    every = max(1, steps // 10)
    samples: list[dict[str, Any]] = []

    def train() -> None:
        for k in range(steps):
            moons.step(k, steps)
            if (k + 1) % every == 0:
                samples.append({"step": k + 1, "rss": rss_bytes(), **arena()})

    benchmark.extra_info.update(count=steps, per="step", engine=engine.name, samples=samples)
    benchmark.pedantic(train, rounds=1)
    handles = {s["handles"] for s in samples}
    assert len(handles) == 1, f"Values leak handles: {sorted(handles)}"
    warm = samples[1:]
    assert len({(s["capacity"], s["arena_bytes"], s["resizes"]) for s in warm}) == 1, (
        f"the arena changed size in steady state: {warm}"
    )
