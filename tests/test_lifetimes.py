"""Lifetimes: what a live Value reaches is never freed, what nothing reaches is, copies and
pickles are plain leaves, and Values still alive when the interpreter exits are harmless.

A Value is a proxy owning a handle; the C arena frees (and moves) nodes no handle reaches.
The programs below drop Values, run the GC and compact the arena in every order, and check
that the Values still held see exactly what they saw before: against the same program run
without dropping anything (bit for bit) and against micrograd.
"""

from __future__ import annotations

import copy
import gc
import math
import pickle
import random
import subprocess
import sys
import textwrap
import weakref
from collections import deque
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from micrograd.engine import Value as MValue
from micrograd_c._core import lib
from micrograd_c.engine import Value
from micrograd_c.nn import MLP

REL = 1e-12  # gradients vs micrograd: the summation order differs (see absolute_backward)


def settle() -> tuple[int, int]:
    """(handles, nodes) once every dropped Value and every unreachable node is gone."""
    gc.collect()
    assert lib.mg_collect() == 0
    return lib.mg_handle_count(), lib.mg_node_count()


@pytest.fixture
def arena():
    """Fails the test if it leaves a handle or a reachable node behind."""
    before = settle()
    yield
    assert settle() == before


def same_float(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b


def history(root: Any) -> list[Any]:
    """Every Value root reaches through _prev, root first (breadth first, each node once)."""
    seen, order, queue = {root}, [root], deque([root])
    while queue:
        for p in queue.popleft()._prev:
            if p not in seen:
                seen.add(p)
                order.append(p)
                queue.append(p)
    return order


# -- a held Value keeps its history ------------------------------------------------------------


def test_a_dropped_value_lives_on_in_the_history_of_a_held_one(arena):
    a = Value(2.0, label="a")
    b = a * 3.0
    ref = weakref.ref(a)
    del a
    gc.collect()
    assert ref() is None  # the proxy is gone ...
    assert lib.mg_collect() == 0
    (a,) = [p for p in b._prev if p.label == "a"]  # ... its node is not
    assert (a.data, a._op, a._prev) == (2.0, "", set())
    b.backward()
    assert a.grad == 3.0


def test_compaction_moves_a_held_graph_and_changes_nothing_in_it(arena):
    def garbage(n: int) -> None:
        x = Value(1.0)
        for _ in range(n):
            x = x * 1.0 + 0.0

    garbage(20_000)
    x = Value(0.5, label="x")
    y = ((x * 2.0).tanh() + x) ** 2
    y.label = "y"
    z = (y * x).relu() - y.exp() / 3.0
    garbage(20_000)
    z.backward()

    def describe(root: Value) -> list[tuple[Any, ...]]:
        return sorted((v.data, v.grad, v._op, v.label, sorted(p.data for p in v._prev))
                      for v in history(root))

    before = describe(z)
    del y
    nodes = lib.mg_node_count()
    assert lib.mg_collect() == 0
    assert lib.mg_node_count() < nodes
    assert describe(z) == before
    for v in history(z):
        v.grad = 0.0
    z.backward()
    assert describe(z) == before


def test_values_in_a_reference_cycle_are_freed_by_the_gc(arena):
    class Box:
        pass

    box = Box()
    box.me = box
    box.value = Value(1.0) * 2.0
    ref = weakref.ref(box.value)
    handles = lib.mg_handle_count()
    del box
    assert ref() is not None  # only the cycle GC can free it
    gc.collect()
    assert ref() is None
    assert lib.mg_handle_count() == handles - 1


def test_many_proxies_of_one_node_share_one_handle(arena):
    a = Value(1.0)
    b = a + a
    handles = lib.mg_handle_count()
    proxies = [next(iter(b._prev)) for _ in range(1000)]
    assert all(p == a for p in proxies)
    assert lib.mg_handle_count() == handles
    del a
    assert lib.mg_handle_count() == handles  # the proxies still own it
    proxies.clear()
    assert lib.mg_handle_count() == handles - 1


# -- random programs: drop, collect, compact in any order --------------------------------------

LEAVES = st.sampled_from([0.0, 1.0, -1.0, 2.0, -2.5, 0.5, 3.0, -0.25])
CONSTANTS = st.sampled_from([1.0, -1.0, 2.0, 0.5, -3.0, 0.1])
OPS: dict[str, Callable[[Any, Any, float], Any]] = {
    "a + b": lambda a, b, k: a + b,
    "a - b": lambda a, b, k: a - b,
    "a * b": lambda a, b, k: a * b,
    "-a": lambda a, b, k: -a,
    "a + k": lambda a, b, k: a + k,
    "k - a": lambda a, b, k: k - a,
    "k * a": lambda a, b, k: k * a,
    "a / k": lambda a, b, k: a / k,
    "a**2": lambda a, b, k: a**2,
    "a.relu()": lambda a, b, k: a.relu(),
}


@st.composite
def programs(draw: Callable[..., Any], max_steps: int = 60) -> list[tuple[Any, ...]]:
    """Steps over a pool of Values, addressed by position; the pool size is tracked so that
    every step is valid."""
    steps: list[tuple[Any, ...]] = []
    size = 0
    for _ in range(draw(st.integers(1, max_steps))):
        kind = "leaf" if size == 0 else draw(st.sampled_from(
            ["leaf", "op", "op", "op", "op", "del", "del_in_cycle", "gc", "collect", "garbage",
             "set_data", "label", "backward", "observe"]))
        if kind == "leaf":
            steps.append(("leaf", draw(LEAVES)))
            size += 1
            continue
        i = draw(st.integers(0, size - 1))
        if kind == "op":
            steps.append(("op", draw(st.sampled_from(sorted(OPS))), i,
                          draw(st.integers(0, size - 1)), draw(CONSTANTS)))
            size += 1
        elif kind in ("del", "del_in_cycle"):
            steps.append((kind, i))
            size -= 1
        elif kind == "set_data":
            steps.append(("set_data", i, draw(LEAVES)))
        elif kind == "label":
            steps.append(("label", i, draw(st.sampled_from(["", "w", "loss", "ünï"]))))
        elif kind in ("backward", "observe"):
            steps.append((kind, i))
        elif kind == "garbage":
            steps.append((kind, i, draw(st.sampled_from([10, 3000]))))
        else:
            steps.append((kind,))
    # (a final GC run only where a cycle needs it: a run costs ~20 ms with micrograd's garbage)
    tail = [("gc",)] if any(step[0] == "del_in_cycle" for step in steps) else []
    return steps + tail + [("collect",)] + [("observe", i) for i in range(size)]


def zero_history(root: Any) -> None:
    """Zeroes every grad root reaches, so that backward() gives the same grads in any engine
    whatever backward() calls came before (micrograd's grads otherwise accumulate)."""
    for v in history(root):
        v.grad = 0


def topological(root: Any) -> list[Any]:
    """What root reaches, parents before children (micrograd's order, without recursion)."""
    topo: list[Any] = []
    done: set[Any] = set()
    stack = [(root, False)]
    while stack:
        v, expanded = stack.pop()
        if expanded:
            topo.append(v)
        elif v not in done:
            done.add(v)
            stack.append((v, True))
            stack.extend((p, False) for p in v._prev if p not in done)
    return topo


def absolute_backward(root: MValue, bound: weakref.WeakKeyDictionary) -> None:
    """micrograd's backward with every local derivative replaced by its absolute value: for
    each node, a bound on every partial sum either engine forms for its grad, so on what
    summing in another order can change."""
    topo = topological(root)
    for v in topo:
        bound[v] = 0.0
    bound[root] = 1.0
    for v in reversed(topo):
        prev = list(v._prev)
        if v._op == "+":  # a set: `a + a` has one child, counted twice
            terms = [(p, 1.0) for p in prev] if len(prev) == 2 else [(prev[0], 2.0)]
        elif v._op == "*":
            terms = ([(prev[0], abs(prev[1].data)), (prev[1], abs(prev[0].data))]
                     if len(prev) == 2 else [(prev[0], 2.0 * abs(prev[0].data))])
        elif v._op.startswith("**"):
            k = float(v._op[2:])
            terms = [(prev[0], abs(k * prev[0].data ** (k - 1)))]
        elif v._op == "ReLU":
            terms = [(prev[0], float(v.data > 0))]
        else:
            terms = []
        for p, derivative in terms:
            bound[p] += bound[v] * derivative


def float_key(x: float) -> tuple[bool, float]:
    """An order on floats with NaN last (-0.0 and 0.0 tie: micrograd's relu gives an int 0)."""
    x = float(x)
    return math.isnan(x), 0.0 if math.isnan(x) else x


# One observed Value: (data, grad, bound) for it and for each of its _prev, in a fixed order,
# and (micrograd_c only) their labels.  bound (micrograd runs only) is absolute_backward's.
# A step that raised is seen as ([], [the exception's name]).
Seen = tuple[list[tuple[float, float, Any]], list[str]]


def observe(v: Any, bound: weakref.WeakKeyDictionary | None) -> Seen:
    def key(x: Any) -> tuple[Any, ...]:  # data, grad, then what breaks ties in one engine
        return (float_key(x.data), float_key(x.grad), float(x.data).hex(), float(x.grad).hex(),
                getattr(x, "label", ""))

    nodes = [v, *sorted(v._prev, key=key)]
    numbers = [(float(x.data), float(x.grad), None if bound is None else bound.get(x, 0.0))
               for x in nodes]
    return numbers, [getattr(x, "label", "") for x in nodes]


def run(V: type, program: list[tuple[Any, ...]], *, drop: bool) -> list[Seen]:
    """Runs program with engine V and returns what its observe steps saw.  With drop=False the
    memory steps are skipped and a dropped Value is kept alive instead.

    "del" drops a Value; "del_in_cycle" leaves it in a reference cycle, for the GC to free;
    "gc" runs the GC; "collect" compacts the arena; "garbage" builds and drops a chain of nodes
    on a Value, so that the arena fills up and compacts itself."""
    pool: list[Any] = []
    kept: list[Any] = []
    in_cycles: list[weakref.ref] = []  # dropped into cycles: alive until the next "gc"
    seen: list[Seen] = []
    bound = weakref.WeakKeyDictionary() if V is MValue else None
    for step in program:
        kind = step[0]
        if kind == "leaf":
            pool.append(V(step[1]))
        elif kind == "op":
            _, name, i, j, k = step
            try:
                pool.append(OPS[name](pool[i], pool[j], k))
            except OverflowError:  # x**2 past the largest float, in micrograd as here
                seen.append(([], ["OverflowError"]))
                pool.append(V(0.0))  # so that the program goes on, the same in every run
        elif kind == "set_data":
            pool[step[1]].data = step[2]
        elif kind == "label":
            if V is Value:  # micrograd 0.1.0's Value has no label
                pool[step[1]].label = step[2]
        elif kind == "backward":
            zero_history(pool[step[1]])
            pool[step[1]].backward()
            if bound is not None:
                absolute_backward(pool[step[1]], bound)
        elif kind == "observe":
            seen.append(observe(pool[step[1]], bound))
        elif not drop:  # a memory step, in the run that keeps everything
            if kind in ("del", "del_in_cycle"):
                kept.append(pool.pop(step[1]))
        elif V is not Value:  # the GC cannot change what a micrograd program computes
            if kind in ("del", "del_in_cycle"):
                del pool[step[1]]
        elif kind == "del":
            ref = weakref.ref(pool.pop(step[1]))
            assert ref() is None  # a proxy is freed as soon as it is dropped
        elif kind == "del_in_cycle":
            cycle = [pool.pop(step[1])]
            cycle.append(cycle)
            in_cycles.append(weakref.ref(cycle[0]))
            del cycle
            assert in_cycles[-1]() is not None
        elif kind == "gc":
            gc.collect()
            assert all(ref() is None for ref in in_cycles)
            in_cycles.clear()
        elif kind == "collect":
            assert lib.mg_collect() == 0
        elif kind == "garbage":
            x = pool[step[1]]
            for _ in range(step[2]):
                x = x * 1.0
            del x
    return seen


def bits(seen: list[Seen]) -> list[Any]:
    return [([(data.hex(), grad.hex()) for data, grad, _ in numbers], labels)
            for numbers, labels in seen]


def check_program(program: list[tuple[Any, ...]]) -> None:
    dropped = run(Value, program, drop=True)
    kept = run(Value, program, drop=False)
    # Bit for bit: whatever was freed and moved, the held Values see the same nodes.
    assert bits(dropped) == bits(kept)
    reference = run(MValue, program, drop=True)
    assert len(dropped) == len(reference)
    for (numbers, labels), (m_numbers, m_labels) in zip(dropped, reference):
        assert len(numbers) == len(m_numbers)
        if not numbers:
            assert labels == m_labels  # the same error
        for (data, grad, _), (m_data, m_grad, bound) in zip(numbers, m_numbers):
            assert same_float(data, m_data), (data, m_data)
            if math.isfinite(bound):
                assert math.isclose(grad, m_grad, rel_tol=REL, abs_tol=max(1e-300, REL * bound)), (
                    grad, m_grad, bound)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_held_values_see_the_same_graph_whatever_was_dropped(program):
    handles = lib.mg_handle_count()
    check_program(program)
    assert lib.mg_handle_count() == handles  # (each program ends with a GC run)


def random_program(seed: int, steps: int) -> list[tuple[Any, ...]]:
    """A long program, with the same step mix as `programs`, for arena growth and reuse."""
    rng = random.Random(seed)
    program: list[tuple[Any, ...]] = [("leaf", 1.0)]
    size = 1
    leaves = [0.0, 1.0, -1.0, 2.0, -2.5, 0.5, 3.0, -0.25]
    for _ in range(steps):
        # bias towards recent Values so that the graph grows deep as well as wide
        i = max(0, size - 1 - int(rng.expovariate(0.1)))
        r = rng.random()
        if r < 0.6:
            program.append(("op", rng.choice(sorted(OPS)), i, rng.randrange(size),
                            rng.choice([1.0, -1.0, 2.0, 0.5, -3.0, 0.1])))
            size += 1
        elif r < 0.7:
            program.append(("leaf", rng.choice(leaves)))
            size += 1
        elif r < 0.85 and size > 1:
            program.append((rng.choice(["del", "del", "del_in_cycle"]), rng.randrange(size)))
            size -= 1
        elif r < 0.91:
            program.append(("collect",))
        elif r < 0.92:
            program.append(("garbage", i, 20_000))
        elif r < 0.93:
            program.append(("gc",))
        elif r < 0.96:
            program.append(("backward", i))
        elif r < 0.98:
            program.append(("set_data", i, rng.choice(leaves)))
        else:
            program.append(("observe", i))
    return program + [("gc",), ("collect",)] + [("observe", i) for i in range(size)]


@pytest.mark.parametrize("seed", range(3))
def test_long_programs_with_drops_and_collections(arena, seed):
    check_program(random_program(seed, 3000))


# -- copies and pickles -----------------------------------------------------------------------


def round_trips() -> dict[str, Callable[[Any], Any]]:
    trips: dict[str, Callable[[Any], Any]] = {"copy": copy.copy, "deepcopy": copy.deepcopy}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        trips[f"pickle{protocol}"] = (
            lambda v, protocol=protocol: pickle.loads(pickle.dumps(v, protocol)))
    return trips


ROUND_TRIPS = round_trips()


@pytest.mark.parametrize("trip", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_a_copy_has_the_data_grad_and_label(arena, trip):
    for data in (1.5, -0.0, math.inf, -math.inf, math.nan, 5e-324, 1.7976931348623157e308):
        for label in ("", "w", "ünïcødé ∂L/∂w", "\udc80"):
            v = Value(data, label=label)
            v.grad = -data
            c = trip(v)
            assert type(c) is Value
            assert same_float(c.data, data) and same_float(c.grad, -data)
            assert math.copysign(1, c.data) == math.copysign(1, data)
            assert c.label == label


@pytest.mark.parametrize("trip", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_a_copy_of_an_interior_node_is_a_new_leaf(arena, trip):
    # The history lives in this process's arena: a copy keeps what the node holds (data, grad,
    # label) and starts a graph of its own, as Value(data) would.
    a, b = Value(2.0), Value(-3.0)
    c = a * b + 1.0
    c.label = "c"
    c.backward()
    d = trip(c)
    assert (d.data, d.grad, d.label) == (-5.0, 1.0, "c")
    assert d._prev == set() and d._op == ""
    assert d != c
    d.data, d.grad, d.label = 7.0, 0.0, "d"  # independent of the original
    assert (c.data, c.grad, c.label) == (-5.0, 1.0, "c")
    (d * 2.0).backward()
    assert d.grad == 2.0 and (a.grad, b.grad) == (-3.0, 2.0)


def test_deepcopy_keeps_sharing_between_the_values_it_copies(arena):
    a = Value(1.0)
    pair = copy.deepcopy([a, a])
    assert pair[0] is pair[1]
    pair = pickle.loads(pickle.dumps([a, a]))
    assert pair[0] is pair[1]


def test_a_pickle_loads_in_another_process(arena):
    v = Value(0.1, label="w")
    v.grad = -2.5
    script = textwrap.dedent("""
        import pickle, sys
        v = pickle.loads(sys.stdin.buffer.read())
        print(repr(v.data), repr(v.grad), v.label, v._prev, repr(v._op))
    """)
    done = subprocess.run([sys.executable, "-c", script], input=pickle.dumps(v),
                          capture_output=True, timeout=120)
    assert done.stderr == b""
    assert done.stdout.decode().split() == ["0.1", "-2.5", "w", "set()", "''"]


@pytest.mark.parametrize("trip", [copy.deepcopy, lambda m: pickle.loads(pickle.dumps(m))],
                         ids=["deepcopy", "pickle"])
def test_a_copied_model_is_the_same_model_and_trains_on_its_own(arena, trip):
    random.seed(1)
    model = MLP(3, [4, 4, 1])
    x = [1.0, -2.0, 0.5]
    out = model(x)
    out.backward()
    twin = trip(model)
    assert repr(twin) == repr(model)
    assert [(p.data, p.grad) for p in twin.parameters()] == [
        (p.data, p.grad) for p in model.parameters()]
    assert twin(x).data == out.data
    before = [p.data for p in model.parameters()]
    twin.zero_grad()
    twin(x).backward()
    for p in twin.parameters():
        p.data -= 0.1 * p.grad
    assert [p.data for p in model.parameters()] == before
    assert twin(x).data != model(x).data


# -- Values alive when the interpreter exits ---------------------------------------------------

EXIT_SCRIPT = textwrap.dedent("""
    import atexit, builtins, gc, sys, threading
    import micrograd_c.engine
    from micrograd_c.engine import Value
    from micrograd_c.nn import MLP

    gc.disable()  # so that the cycles below are still there when the interpreter exits
    a = Value(2.0, label="a")                  # module globals, with a history
    b = (a * 3.0 + 1.0).relu()
    b.backward()
    values = [a * float(i) for i in range(1000)]  # a module-level list


    class Holder:
        pass


    holder = Holder()
    holder.me = holder                         # a reference cycle holding Values
    holder.values = [b, Value(1.0) + a, values[:10]]
    cycle = [a, b]
    cycle.append(cycle)
    del holder, cycle
    Holder.value = b - a                       # a class attribute
    builtins.late_value = Value(5.0) * a       # lives until the very end of finalisation
    micrograd_c.engine.own_value = b * b       # in the module that defines Value
    model = MLP(2, [8, 1])                     # a model and its graph
    loss = model([1.0, -2.0])
    loss.backward()
    atexit.register(lambda: globals().setdefault("made_at_exit", [Value(3.0) * b]))

    if "--thread" in sys.argv:
        def churn():  # still building and dropping graphs when the interpreter exits
            x = Value(0.5)
            while True:
                y = x
                for _ in range(100):
                    y = y * 1.0 + x
                y.backward()

        threading.Thread(target=churn, daemon=True).start()

    assert (a.grad, b.data) == (3.0, 7.0)
    print("done")


    def finish(local=Value(9.0) * a):
        frame_local = [local, Value(1.0)]
        sys.exit(0)


    finish()
""")


@pytest.mark.parametrize("args", [[], ["-X", "dev", "-W", "error"], ["-X", "dev", "--thread"]],
                         ids=["plain", "dev-mode", "daemon-thread"])
def test_values_alive_at_exit_make_no_crash_and_no_output(args):
    flags = [a for a in args if a != "--thread"]
    script_args = [a for a in args if a == "--thread"]
    done = subprocess.run([sys.executable, *flags, "-c", EXIT_SCRIPT, *script_args],
                          capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "")
