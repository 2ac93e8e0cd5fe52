"""`Value.forward()`: re-running a built graph in C from new leaf data.

The contract: after setting leaves' `.data`, `root.forward()` gives every node the root reaches
the data a fresh build of the same program from those leaves gives, bit for bit, and a grad of
0; `backward()` after it gives the fresh build's gradients, bit for bit.  Leaves and hand-built
nodes keep their data and grad.  An op that fails raises what building raises; then no leaf has
changed, the nodes built before the failing one hold their new data and the failing one and
every node after it NaN, until a forward() that succeeds.

micrograd has no forward(): the reference here is micrograd_c's own fresh build, whose numbers
test_differential.py ties to micrograd's.
"""

from __future__ import annotations

import gc
import math
import random
import struct
import threading
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from micrograd.engine import Value as MValue
from micrograd.nn import MLP as MMLP

from micrograd_c._core import lib
from micrograd_c.engine import Value
from micrograd_c.nn import MLP

# -- random programs -----------------------------------------------------------------------------

OPS: dict[str, Callable[..., Value]] = {
    "add": lambda x, y: x + y,
    "mul": lambda x, y: x * y,
    "sub": lambda x, y: x - y,
    "div": lambda x, y: x / y,
    "neg": lambda x: -x,
    "relu": lambda x: x.relu(),
    "tanh": lambda x: x.tanh(),
    "exp": lambda x: x.exp(),
    "v+k": lambda x, k: x + k,
    "k*v": lambda x, k: k * x,
    "k-v": lambda x, k: k - x,
    "k/v": lambda x, k: k / x,
    "custom": lambda x, y, k: Value(k, (x, y), "custom"),  # hand-built: no forward rule
}
ARITY = {"add": 2, "mul": 2, "sub": 2, "div": 2, "custom": 2}
EXPONENTS = [2, 3, -1, -2, 0.5, 1.5, -0.5, 2.0]
ERRORS = (ZeroDivisionError, OverflowError, ValueError)

leaf_values = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, 0.5, -3.0]),
    st.floats(-4.0, 4.0, allow_nan=False, allow_infinity=False),
)
index = st.integers(0, 10**6)  # counted back from the newest value, modulo the pool size
steps = st.one_of(
    st.tuples(st.sampled_from(sorted(OPS)), index, index, st.floats(-3.0, 3.0)),
    st.tuples(st.just("pow"), index, index, st.sampled_from(EXPONENTS)),
)


def operand(pool: list[Value], raw: int) -> Value:
    return pool[len(pool) - 1 - raw % len(pool)]


def apply(step: tuple[Any, ...], pool: list[Value]) -> Value:
    name, i, j, k = step
    x, y = operand(pool, i), operand(pool, j)
    if name == "pow":
        return x**k
    if name == "custom":
        return OPS[name](x, y, k)
    if name in ("v+k", "k*v", "k-v", "k/v"):
        return OPS[name](x, k)
    return OPS[name](x, y) if ARITY.get(name) == 2 else OPS[name](x)


def build(
    leaf_data: list[float], program: list[tuple[Any, ...]], skip_failures: bool = False
) -> tuple[list[Value], list[tuple[Any, ...]], BaseException | None]:
    """Builds the program from fresh leaves: every Value made (the leaves, one per step, then
    the root, the sum of them all, which so reaches every one), the steps that built, and the
    exception of the first step that raised (the build stops there unless skip_failures)."""
    pool = [Value(x) for x in leaf_data]
    built = []
    for step in program:
        try:
            value = apply(step, pool)
        except ERRORS as exc:
            if skip_failures:
                continue
            return pool, built, exc
        pool.append(value)
        built.append(step)
    pool.append(sum(pool[1:], pool[0]))  # + never raises: it overflows to inf
    return pool, built, None


def bits(x: float) -> bytes:
    """A float's bits, with every NaN alike: 'the same float' means the same bits."""
    return b"nan" if math.isnan(x) else struct.pack("<d", x)


def datas(values: list[Value]) -> list[bytes]:
    return [bits(v.data) for v in values]


def grads(values: list[Value]) -> list[bytes]:
    return [bits(v.grad) for v in values]


def is_kept(v: Value) -> bool:
    """Leaves and hand-built nodes: forward() keeps their data and grad."""
    return v._op in ("", "custom")


def backward_outcome(root: Value) -> str:
    try:
        root.backward()
    except ERRORS as exc:
        return type(exc).__name__
    return "ok"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.lists(leaf_values, min_size=1, max_size=4),
    program=st.lists(steps, min_size=1, max_size=40),
    second=st.data(),
)
def test_forward_after_new_leaves_is_a_fresh_build(first, program, second):
    # The graph: the program built at the first leaves, without the steps that fail there.
    pool, program, _ = build(first, program, skip_failures=True)
    root, leaves = pool[-1], pool[: len(first)]
    event(f"backward at the first leaves: {backward_outcome(root)}")  # grads to reset
    for v in pool:
        if is_kept(v):
            v.grad = 7.5  # the user's: forward() must keep them
    new = second.draw(
        st.lists(leaf_values, min_size=len(first), max_size=len(first)), label="new leaves"
    )
    for leaf, x in zip(leaves, new):
        leaf.data = x
    fresh, _, failure = build(new, program)
    note(f"the fresh build raises {failure!r}")
    if failure is None:
        event("forward succeeds")
        root.forward()
        assert datas(pool) == datas(fresh)
        assert [v.grad for v in pool] == [7.5 if is_kept(v) else 0.0 for v in pool]
        for v in pool:
            if is_kept(v):
                v.grad = 0.0  # as the fresh build's
        assert backward_outcome(root) == backward_outcome(fresh[-1])
        assert grads(pool) == grads(fresh)
    else:
        event(f"forward raises {type(failure).__name__}")
        with pytest.raises(type(failure)) as raised:
            root.forward()
        assert str(raised.value) == str(failure)
        assert datas(leaves) == [bits(x) for x in new]  # no leaf changed
        failed_at = len(fresh)  # the failing step's Value, the first the fresh build lacks
        assert datas(pool[:failed_at]) == datas(fresh)  # built before it: the new data
        assert [math.isnan(v.data) for v in pool[failed_at:] if not is_kept(v)] == [True] * sum(
            not is_kept(v) for v in pool[failed_at:]
        )
        assert [v.grad for v in pool] == [7.5 if is_kept(v) else 0.0 for v in pool]
    # Fixing the leaves (back to the first ones, which build) makes forward() exact again.
    for leaf, x in zip(leaves, first):
        leaf.data = x
    root.forward()
    assert datas(pool) == datas(build(first, program)[0])


# -- each part of the contract, by hand ----------------------------------------------------------


def neuron(x1: Value, x2: Value, w1: Value, w2: Value, b: Value) -> Value:
    """The lecture's neuron, with every op: tanh(x1*w1 + x2*w2 + b), exp and relu and powers."""
    n = x1 * w1 + x2 * w2 + b
    return n.tanh() * (n * 0.5).exp() + (n - 1.0).relu() ** 2 + 3.0 / (n * n + 1.0)


def test_every_op_re_runs_to_a_fresh_build_and_its_grads():
    leaves = [Value(x) for x in (2.0, 0.0, -3.0, 1.0, 6.881373587019543)]
    out = neuron(*leaves)
    for new in ([0.5, -1.5, 2.0, -0.25, 0.1], [-2.0, 1.0, 0.5, 0.5, -3.0], [0.0] * 5):
        for leaf, x in zip(leaves, new):
            leaf.data = x
            leaf.grad = 0.0
        out.forward()
        fresh_leaves = [Value(x) for x in new]
        fresh = neuron(*fresh_leaves)
        assert bits(out.data) == bits(fresh.data)
        out.backward()
        fresh.backward()
        assert grads(leaves) == grads(fresh_leaves)


def test_forward_resets_non_leaf_grads_and_keeps_leaf_grads():
    a, b = Value(2.0), Value(3.0)
    c = a * b
    d = c + a
    d.backward()
    assert (a.grad, b.grad, c.grad, d.grad) == (4.0, 2.0, 1.0, 1.0)
    d.forward()
    assert (c.grad, d.grad) == (0.0, 0.0)
    assert (a.grad, b.grad) == (4.0, 2.0)  # the user's, accumulating as in micrograd
    d.backward()
    assert (a.grad, b.grad) == (8.0, 4.0)


def test_hand_built_nodes_keep_their_data_like_a_leaf():
    a, b = Value(2.0), Value(3.0)
    k = Value(10.0, (a, b), "f")  # micrograd gives such a node no rule to compute it
    out = k * a
    a.data = 5.0
    k.grad = 4.0
    out.forward()
    assert (k.data, k.grad) == (10.0, 4.0)
    assert out.data == 50.0
    assert a.data == 5.0


def test_forward_touches_only_what_the_value_reaches():
    a, b = Value(2.0), Value(-3.0)
    before = a * b  # built from the same leaves, between them and the root
    root = a + b * 2.0
    after = (root * b).relu()  # a consumer of the root
    before.grad, after.grad = 5.0, -7.0
    a.data = 4.0
    root.forward()
    assert root.data == -2.0
    assert (before.data, before.grad) == (-6.0, 5.0)
    assert (after.data, after.grad) == (12.0, -7.0)  # from the old root: not reached


def test_a_python_if_on_data_is_not_re_run():
    # The pattern is valid only when the graph's shape does not depend on the data.
    x = Value(2.0)
    y = x * 3.0 if x.data > 0 else x * -1.0  # chose `* 3.0` once, at build time
    z = x.relu()  # a node: its choice is made again by forward()
    x.data = -2.0
    y.forward()
    z.forward()
    assert y.data == -6.0  # not 2.0, which a rebuild would give
    assert z.data == 0.0


@pytest.mark.parametrize(
    "build, bad, exception, message",
    [
        (lambda x: x**-1, 0.0, ZeroDivisionError, "0.0 cannot be raised to a negative power"),
        (lambda x: x / x, 0.0, ZeroDivisionError, "0.0 cannot be raised to a negative power"),
        (lambda x: x**400, 10.0, OverflowError, "Numerical result out of range"),
        (lambda x: x.exp(), 1000.0, OverflowError, "math range error"),
        (lambda x: x ** (1 / 3), -8.0, ValueError, "raised to a fractional power"),
    ],
    ids=["0**-1", "0/0", "10**400", "exp(1000)", "(-8)**(1/3)"],
)
def test_errors_are_the_builds_and_leave_a_defined_state(build, bad, exception, message):
    x, w = Value(2.0), Value(3.0)
    before = x * w  # built before the failing node
    failing = build(x)
    after = before + w  # built after it, not depending on it
    root = (failing + after) * 2.0
    root.backward()
    leaf_grads = (x.grad, w.grad)
    with pytest.raises(exception, match=message):  # what building raises
        build(Value(bad))
    x.data = bad
    with pytest.raises(exception, match=message):
        root.forward()
    assert (x.data, w.data) == (bad, 3.0)  # no leaf changes
    assert (x.grad, w.grad) == leaf_grads
    assert before.data == bad * 3.0  # built before the failing node: new data
    assert math.isnan(failing.data) and math.isnan(after.data) and math.isnan(root.data)
    assert (before.grad, failing.grad, after.grad, root.grad) == (0.0, 0.0, 0.0, 0.0)
    x.data = 2.0  # fixed: exact again
    root.forward()
    fresh_x = Value(2.0)
    fresh_w = Value(3.0)
    fresh = (build(fresh_x) + (fresh_x * fresh_w + fresh_w)) * 2.0
    assert bits(root.data) == bits(fresh.data)


def test_the_leaves_grads_survive_a_failed_forward():
    x = Value(1.0)
    y = x**-1
    y.backward()
    assert x.grad == -1.0
    x.data = 0.0
    with pytest.raises(ZeroDivisionError):
        y.forward()
    assert (x.data, x.grad) == (0.0, -1.0)


def test_forward_after_the_graph_moved_in_the_arena(settled):
    garbage = [Value(float(k)) * 2.0 for k in range(5000)]  # nodes below the graph
    a, b = Value(1.5), Value(-0.5)
    root = (a * b + a).tanh() * b
    root.forward()  # remembers its order of nodes...
    del garbage
    gc.collect()
    assert lib.mg_collect() == 0  # ...and compaction moves every one of them
    a.data = 3.0
    root.forward()
    fresh_a, fresh_b = Value(3.0), Value(-0.5)
    fresh = (fresh_a * fresh_b + fresh_a).tanh() * fresh_b
    assert bits(root.data) == bits(fresh.data)
    root.backward()
    fresh.backward()
    assert (a.grad, b.grad) == (fresh_a.grad, fresh_b.grad)


@pytest.mark.slow
def test_ten_million_deep_chain_re_runs(settled):
    n = 10_000_000
    x0, w = Value(0.5), Value(1.0)
    x = x0
    for _ in range(n):
        x = x + w
    x0.data, w.data = 0.25, 0.5  # every partial sum stays exact
    x.forward()
    assert x.data == 0.25 + 0.5 * n
    x.backward()
    assert (x0.grad, w.grad) == (1.0, float(n))


def test_a_million_deep_chain_of_every_one_operand_op_re_runs(settled):
    x0 = Value(0.5)
    x = x0
    for _ in range(200_000):  # five nodes deep a step
        x = ((x.tanh() + 0.5).relu() ** 2 * 0.5).exp() * 0.3
    x0.data = 0.75
    x.forward()
    data = 0.75  # the same arithmetic in Python floats
    for _ in range(200_000):
        data = math.exp(relu(math.tanh(data) + 0.5) ** 2 * 0.5) * 0.3
    assert x.data == data


def relu(v: float) -> float:
    return 0.0 if v < 0 else v


# -- the training pattern: build once, re-run ----------------------------------------------------


def moons_like(n: int = 12) -> tuple[list[list[float]], list[int]]:
    rng = random.Random(3)
    X = [[rng.uniform(-1.5, 2.5), rng.uniform(-1.0, 1.5)] for _ in range(n)]
    return X, [1 if x[1] > 0.5 - 0.5 * x[0] else -1 for x in X]


def svm_loss(model, inputs, y):
    scores = list(map(model, inputs))
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = 1e-4 * sum(p * p for p in model.parameters())
    return data_loss + reg_loss


def test_replaying_a_training_loop_gives_the_rebuild_losses_bit_for_bit():
    X, y = moons_like()
    random.seed(5)
    rebuilt_model = MLP(2, [8, 8, 1])
    random.seed(5)
    replayed_model = MLP(2, [8, 8, 1])
    random.seed(5)
    micrograd_model = MMLP(2, [8, 8, 1])
    inputs = [[Value(0.0), Value(0.0)] for _ in X]  # input leaves, filled each step
    loss = svm_loss(replayed_model, inputs, y)
    rebuilt, replayed, reference = [], [], []
    for k in range(6):
        batch = [[a + 0.1 * k, b - 0.05 * k] for a, b in X]  # new inputs each step
        for row, xs in zip(inputs, batch):
            row[0].data, row[1].data = xs
        loss_r = svm_loss(rebuilt_model, [list(map(Value, xs)) for xs in batch], y)
        loss.forward()
        loss_m = svm_loss(micrograd_model, [list(map(MValue, xs)) for xs in batch], y)
        for model, total in (
            (rebuilt_model, loss_r),
            (replayed_model, loss),
            (micrograd_model, loss_m),
        ):
            model.zero_grad()
            total.backward()
            for p in model.parameters():
                p.data -= 0.1 * p.grad
        rebuilt.append(loss_r.data)
        replayed.append(loss.data)
        reference.append(loss_m.data)
    assert [bits(x) for x in replayed] == [bits(x) for x in rebuilt]
    assert len(set(replayed)) == len(replayed)  # the inputs and the model did change
    assert replayed == pytest.approx(reference, rel=1e-9)  # micrograd sums grads in its order
    assert [bits(p.data) for p in replayed_model.parameters()] == [
        bits(p.data) for p in rebuilt_model.parameters()
    ]


# -- threads -------------------------------------------------------------------------------------


def replay_workload(seed: int, rounds: int = 30, width: int = 300) -> list[float]:
    """A graph of its own, re-run `rounds` times from new leaves; the outputs and grads."""
    rng = random.Random(seed)
    leaves = [Value(rng.uniform(-1.0, 1.0)) for _ in range(16)]
    x = Value(0.0)
    for _ in range(width):
        p, q = leaves[rng.randrange(16)], leaves[rng.randrange(16)]
        x = (x * p + q).tanh() + (q * q).relu() * 0.01 - (p * 0.1).exp() * 0.001
    seen = []
    for _ in range(rounds):
        for leaf in leaves:
            leaf.data = rng.uniform(-1.0, 1.0)
            leaf.grad = 0.0
        _ = [Value(1.0) * 2.0 for _ in range(200)]  # garbage: compaction moves graphs
        x.forward()
        x.backward()
        seen.append(x.data)
        seen.extend(leaf.grad for leaf in leaves)
    return seen


def test_threads_re_running_their_own_graphs_get_the_single_threaded_numbers():
    expected = [replay_workload(seed) for seed in range(4)]
    results: list[Any] = [None] * 4
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work(k: int) -> None:
        try:
            barrier.wait()
            results[k] = replay_workload(k)
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [[bits(x) for x in r] for r in results] == [[bits(x) for x in e] for e in expected]
