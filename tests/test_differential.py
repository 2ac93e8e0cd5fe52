"""Differential tests: random programs run by micrograd and by micrograd_c must agree.

A program is a few leaves and a list of steps; each step applies one operator (every operator
micrograd has, reflected forms and constants on either side included, and the lecture's tanh
and exp) to values already made, so subexpressions are shared and the graph is a DAG, not a
tree.  The reference runs the same program step by step: micrograd itself, or, for a program
with tanh or exp (micrograd has neither), tests/reference.py, micrograd's rules plus the
lecture's formulas (checked against micrograd here on the programs micrograd can run).

* every forward value is the same float (bit for bit; NaN matches NaN);
* an operation the reference refuses with ZeroDivisionError / OverflowError fails the same way;
  where micrograd makes a complex number, micrograd_c (real numbers only) raises ValueError;
  such a step is then dropped from the program (in both engines) and the program goes on, so
  the values made before it are checked to survive the failure;
* after `backward()` from the last value, every gradient agrees to 1e-12 relative;
* the two graphs are the same node for node (same `_op`, same children, same sharing).

Why gradients are compared to a tolerance and not bit for bit: micrograd's topological order
comes from iterating `_prev` sets, ordered by object addresses, so micrograd itself sums a
node's incoming gradients in a different order from run to run.  Where those sums cancel, the
last bits (or, after heavy cancellation, more) depend on that order.  So the tolerance is
1e-12 of the gradient, widened only to 1e-12 of the sum of the absolute values of the summed
terms (`magnitude_bound`), which is what reordering a float sum can change.

The strategies aim at big graphs whose every gradient can be compared: programs are long
enough, most tie every value into the root, and an infinity or a NaN (which makes the order of
a sum decide its result, so that gradient cannot be compared) is a rare constant.  The events
(`pytest --hypothesis-show-statistics`) count how many examples got there.
"""

import math
from collections import Counter

import pytest
from hypothesis import HealthCheck, assume, event, given, note, settings
from hypothesis import strategies as st

from micrograd.engine import Value as MValue
from micrograd_c.engine import Value as CValue

from conftest import FORMS_WITH_CONSTANT
from reference import RefValue

REL = 1e-12

BINARY = {
    "add": lambda x, y: x + y,
    "mul": lambda x, y: x * y,
    "sub": lambda x, y: x - y,
    "div": lambda x, y: x / y,
}
UNARY = {
    "neg": lambda x: -x,
    "relu": lambda x: x.relu(),
    "tanh": lambda x: x.tanh(),
    "exp": lambda x: x.exp(),
}
LECTURE_OPS = {"tanh", "exp"}  # micrograd has no tanh or exp: tests/reference.py stands in
WITH_CONSTANT = FORMS_WITH_CONSTANT
EXPONENTS = [2, 3, -1, -2, 0, 1, 0.5, 1.5, -0.5, 0.25, 2.0, 3.0, -1.0]
# Exponents whose derivative, e * x ** (e - 1), exists wherever the forward pass did: no 0.0
# meets a negative power in backward (x ** 0 and x ** 0.5 of x == 0.0 fail only there).
EXPONENTS_TOTAL = [e for e in EXPONENTS if e < 0 or e >= 1]

leaf_values = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, 0.5, -3.0, 1e-3]),
    st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False),
)
finite_constants = st.one_of(
    st.sampled_from([0, 1, 2, -1, -3, 10, True, 0.5, -1.5, 2.0, 0.1, 1e-3, 1e3, -0.0]),
    st.integers(-5, 5),
    st.floats(-10.0, 10.0, allow_nan=False, allow_infinity=False),
)
# An infinity or a NaN flows through every value after it and leaves those gradients
# incomparable: one constant in 50 (not one in 4) keeps most programs comparable.
constants = st.tuples(
    st.integers(0, 49), finite_constants, st.sampled_from([math.inf, -math.inf, math.nan])
).map(lambda choice: choice[2] if choice[0] == 0 else choice[1])
index = st.integers(0, 10**6)  # counted back from the newest value, modulo the pool size


def steps(exponents, unary):
    return st.one_of(
        st.tuples(st.just("bin"), st.sampled_from(sorted(BINARY)), index, index),
        st.tuples(st.just("un"), st.sampled_from(sorted(unary)), index),
        st.tuples(st.just("pow"), st.sampled_from(exponents), index),
        st.tuples(st.just("const"), st.sampled_from(sorted(WITH_CONSTANT)), index, constants),
    )


def programs(min_steps, max_steps, exponents=EXPONENTS_TOTAL, lecture_ops=True):
    step = steps(exponents, UNARY if lecture_ops else set(UNARY) - LECTURE_OPS)
    return st.tuples(
        st.lists(leaf_values, min_size=1, max_size=4),
        st.lists(step, min_size=min_steps, max_size=max_steps),
        # tie: finish by adding up every value made, so all of them reach the root (7 in 8 do:
        # an untied program's root reaches only some of its values, a case worth having too)
        st.integers(0, 7).map(bool),
    )


def pick(pool_size, raw):
    return pool_size - 1 - raw % pool_size


def operands(step, pool_size):
    """Pool indices a step reads."""
    if step[0] == "bin":
        return [pick(pool_size, step[2]), pick(pool_size, step[3])]
    return [pick(pool_size, step[2])]


def apply(step, pool):
    idx = operands(step, len(pool))
    kind, name = step[0], step[1]
    if kind == "bin":
        return BINARY[name](pool[idx[0]], pool[idx[1]])
    if kind == "un":
        return UNARY[name](pool[idx[0]])
    if kind == "pow":
        return pool[idx[0]] ** name
    return WITH_CONSTANT[name](pool[idx[0]], step[3])


def complex_power(step, pool):
    """Whether micrograd would raise a finite negative number to a non-integer power."""
    if step[0] != "pow":
        return False
    base = pool[operands(step, len(pool))[0]].data
    return math.isfinite(base) and base < 0 and step[1] != math.floor(step[1])


def safe(f):
    """|f()| as a float, inf when it cannot be computed (a bound that tells nothing)."""
    try:
        return abs(float(f()))
    except (ArithmeticError, ValueError, TypeError):
        return math.inf


def local_magnitudes(step, xs):
    """|d out / d operand| for each operand of a step, from micrograd's operand data xs."""
    kind, name = step[0], step[1]
    if kind == "bin":
        x, y = xs
        if name in ("add", "sub"):
            return [1.0, 1.0]
        if name == "mul":
            return [safe(lambda: y), safe(lambda: x)]
        return [safe(lambda: y**-1), safe(lambda: x) * safe(lambda: y**-2)]  # div
    (x,) = xs
    if kind == "un":
        if name == "tanh":
            return [safe(lambda: 1 - math.tanh(x) ** 2)]
        if name == "exp":
            return [safe(lambda: math.exp(x))]
        return [1.0]
    if kind == "pow":
        return [safe(lambda: name * x ** (name - 1))]
    k = step[3]
    if name in ("v+k", "k+v", "v-k", "k-v"):
        return [1.0]
    if name in ("v*k", "k*v"):
        return [safe(lambda: k)]
    if name == "v/k":
        return [safe(lambda: k**-1)]
    return [safe(lambda: k) * safe(lambda: x**-2)]  # k/x


def magnitude_bound(leaf_count, program_steps, mdata):
    """For every pool value, the sum over all paths to the root of the product of the absolute
    local derivatives: a bound on every partial sum either engine forms for its gradient."""
    n = len(mdata)
    bound = [0.0] * n
    reached = [False] * n
    bound[n - 1], reached[n - 1] = 1.0, True
    for s in range(n - 1, leaf_count - 1, -1):
        if not reached[s]:
            continue
        step = program_steps[s - leaf_count]
        idx = operands(step, s)
        mags = local_magnitudes(step, [mdata[i] for i in idx])
        for i, mag in zip(idx, mags):
            reached[i] = True
            bound[i] += bound[s] * mag  # 0 * inf is NaN: an incomparable gradient
    return bound, reached


def same_float(c, m):
    if isinstance(m, float) and math.isnan(m):
        return isinstance(c, float) and math.isnan(c)
    return c == m


def data_key(x):
    x = float(x)
    return "nan" if math.isnan(x) else x


def node_key(v):
    return (v._op, data_key(v.data))


def assert_same_graph(mroot, croot, known_pairs):
    """Walks both graphs from the root in parallel, pairing each micrograd node with exactly
    one micrograd_c node, and checks `_op`, data and the multiset of children at every node."""
    m2c = {}  # id(micrograd node) -> micrograd_c node
    c2m = {}  # micrograd_c node (hashed by node) -> micrograd node
    keep = []  # keeps micrograd nodes alive so their ids stay unique

    def pair(m, c):
        if id(m) in m2c:
            assert m2c[id(m)] == c, "one micrograd node maps to two micrograd_c nodes"
            return False
        assert c not in c2m, "two micrograd nodes map to one micrograd_c node"
        m2c[id(m)] = c
        c2m[c] = m
        keep.append(m)
        return True

    for m, c in known_pairs:
        pair(m, c)
    todo = [(mroot, croot)]
    seen = set()
    while todo:
        m, c = todo.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        assert c._op == m._op
        assert same_float(c.data, m.data), (m._op, c.data, m.data)
        mkids, ckids = list(m._prev), list(c._prev)
        assert isinstance(c._prev, set)
        assert len(ckids) == len(mkids), m._op
        assert Counter(map(node_key, ckids)) == Counter(map(node_key, mkids)), m._op
        unmatched = list(ckids)
        # children already paired first (shared nodes), then the rest by (op, data)
        for mk in sorted(mkids, key=lambda k: id(k) not in m2c):
            if id(mk) in m2c:
                ck = m2c[id(mk)]
                assert ck in unmatched, "a shared node is not shared in micrograd_c"
            else:
                ck = next(u for u in unmatched if node_key(u) == node_key(mk) and u not in c2m)
            unmatched.remove(ck)
            pair(mk, ck)
            todo.append((mk, ck))
    return len(seen)


def backward_error_types(mroot):
    """The exceptions micrograd's backward can raise at some node of this graph (only a power
    node's local backward, x ** (e - 1), can fail)."""
    types, todo, seen = set(), [mroot], set()
    while todo:
        v = todo.pop()
        if id(v) in seen:
            continue
        seen.add(id(v))
        todo.extend(v._prev)
        if v._op.startswith("**"):
            text = v._op[2:]
            e = int(text) if text.lstrip("-").isdigit() else float(text)
            (base,) = v._prev
            try:
                e * base.data ** (e - 1)
            except (ZeroDivisionError, OverflowError) as exc:  # (any other is a test failure)
                types.add(type(exc))
    return types


def reference_for(program_steps):
    """micrograd, or for a program with tanh or exp, the pure-Python reference."""
    lecture = any(step[0] == "un" and step[1] in LECTURE_OPS for step in program_steps)
    return RefValue if lecture else MValue


def check_program(program):
    leaves, program_steps, tie = program
    if tie:
        n = len(leaves) + len(program_steps)
        program_steps = program_steps + [("bin", "add", 0, 2 * k + 1) for k in range(n - 1)]
    RValue = reference_for(program_steps)
    event("reference: " + ("micrograd" if RValue is MValue else "tests/reference.py"))
    mpool = [RValue(x) for x in leaves]
    cpool = [CValue(x) for x in leaves]
    used_steps = []
    for step in program_steps:
        # A step micrograd cannot do must fail the same way in micrograd_c; it is then left
        # out of the program (the values it would have used stay, and must stay intact).
        if complex_power(step, mpool):
            # micrograd's float ** fraction of a negative float goes to complex arithmetic: a
            # complex number, or OverflowError('complex exponentiation') when that overflows
            note(f"complex power at {step}")
            with pytest.raises(ValueError, match="complex"):
                apply(step, cpool)
            event("complex power refused")
            continue
        try:
            m = apply(step, mpool)
        except (ZeroDivisionError, OverflowError) as exc:  # anything else fails the test
            note(f"the reference raised {exc!r} at {step}")
            with pytest.raises(type(exc)):
                apply(step, cpool)
            event(f"forward {type(exc).__name__}")
            continue
        assert not isinstance(m.data, complex)
        # micrograd keeps Python ints (relu's 0, and int constants added to it) exact; past
        # 2**53 they stop being floats, which micrograd_c's data always is.
        assume(not (type(m.data) is int and abs(m.data) > 2**53))
        c = apply(step, cpool)
        assert type(c.data) is float
        assert same_float(c.data, m.data), (step, c.data, m.data)
        mpool.append(m)
        cpool.append(c)
        used_steps.append(step)

    # forward: bit-identical, signed zeros included where micrograd computed in floats too
    # (micrograd's relu returns the int 0, and int 0 * -1 is 0, where 0.0 * -1.0 is -0.0)
    floats_only = all(type(v.data) is float for v in mpool)
    for m, c in zip(mpool, cpool):
        assert same_float(c.data, m.data)
        if floats_only and c.data == 0:
            assert math.copysign(1, c.data) == math.copysign(1, m.data)

    # same graph, node for node
    mroot, croot = mpool[-1], cpool[-1]
    nodes = assert_same_graph(mroot, croot, list(zip(mpool, cpool)))
    size = "50+" if nodes >= 50 else "under 50"
    event(f"graph of {min(nodes // 10 * 10, 60)}+ nodes")

    # backward
    possible = backward_error_types(mroot)
    try:
        mroot.backward()
    except RecursionError:
        assume(False)
    except (ZeroDivisionError, OverflowError) as exc:
        assume(len(possible) == 1)  # two kinds of failure: which comes first depends on order
        with pytest.raises(type(exc)):
            croot.backward()
        event(f"backward {type(exc).__name__}")
        event(f"{size} nodes: backward failed, no gradient compared")
        # the arena survives: values are intact and a fresh graph still differentiates
        for m, c in zip(mpool, cpool):
            assert same_float(c.data, m.data)
        probe = cpool[0] * 3.0 + 1.0
        before = cpool[0].grad
        probe.backward()
        assert cpool[0].grad == before + 3.0 or math.isnan(before)
        return
    croot.backward()
    assert not possible
    assert all(type(c.grad) is float for c in cpool)

    compared = assert_same_grads(len(leaves), used_steps, mpool, cpool)
    if compared == len(mpool):
        event(f"{size} nodes: every gradient compared")
    else:
        event(f"{size} nodes: some gradients over an inf/NaN bound, not compared")


def assert_same_grads(leaf_count, used_steps, mpool, cpool):
    """Every gradient of cpool within tolerance of the reference's mpool, where a finite bound
    makes it comparable; returns how many were compared."""
    bound, reached = magnitude_bound(leaf_count, used_steps, [m.data for m in mpool])
    compared = 0
    for i, (m, c) in enumerate(zip(mpool, cpool)):
        if not reached[i]:
            assert c.grad == 0 == m.grad  # not reachable from the root: never touched
        if not math.isfinite(bound[i]):
            continue  # an inf or NaN in the sums: which one comes out depends on the order
        compared += 1
        tolerance = max(1e-300, REL * bound[i])
        assert math.isclose(c.grad, m.grad, rel_tol=REL, abs_tol=tolerance), (
            i,
            c.grad,
            m.grad,
            bound[i],
        )
    return compared


@settings(max_examples=1_000, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(programs(25, 60))
def test_same_values_grads_and_graph_as_micrograd(program):
    check_program(program)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(programs(1, 12, exponents=EXPONENTS))
def test_small_programs_same_as_micrograd(program):
    # every corner a few steps reach: 0.0 ** 0.5 failing in backward, a lone leaf as the root
    check_program(program)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(programs(40, 150))
def test_long_programs_same_as_micrograd(program):
    check_program(program)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(programs(1, 40, exponents=EXPONENTS, lecture_ops=False))
def test_the_reference_is_micrograd(program):
    # tests/reference.py stands in for micrograd where a program has tanh or exp: on programs
    # micrograd can run, it must be micrograd, compared exactly as micrograd_c is
    leaves, program_steps, tie = program
    mpool = [MValue(x) for x in leaves]
    rpool = [RefValue(x) for x in leaves]
    used_steps = []
    for step in program_steps:
        if complex_power(step, mpool):
            continue
        try:
            m = apply(step, mpool)
        except (ZeroDivisionError, OverflowError) as exc:
            with pytest.raises(type(exc)):
                apply(step, rpool)
            continue
        r = apply(step, rpool)
        assert type(r.data) is type(m.data) and same_float(r.data, m.data)
        assert r._op == m._op
        mpool.append(m)
        rpool.append(r)
        used_steps.append(step)
    outcomes = []
    for root in (mpool[-1], rpool[-1]):
        try:
            root.backward()
            outcomes.append("ok")
        except (ZeroDivisionError, OverflowError, RecursionError) as exc:
            outcomes.append(type(exc).__name__)
    assume(outcomes[0] != "RecursionError" and len(backward_error_types(mpool[-1])) < 2)
    assert outcomes[0] == outcomes[1]
    if outcomes[0] == "ok":
        assert all(type(r.grad) is type(m.grad) for m, r in zip(mpool, rpool))
        assert_same_grads(len(leaves), used_steps, mpool, rpool)
