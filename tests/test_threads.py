"""Threads: every C call takes the arena's lock (and, as built, keeps the GIL), so graphs built
and differentiated in several threads at once must come out exactly as they do one at a time,
even while the arena compacts underneath them."""

import gc
import math
import random
import sys
import threading
import time

import pytest

from micrograd_c._core import lib
from micrograd_c.engine import Value

THREADS = 4
OPS = 1_000_000  # per thread


def workload(seed, params=None, ops=OPS):
    """A deterministic graph of about `ops` operations (17 a step, and 2 more left as garbage)
    over 16 parameters, differentiated.

    Returns its output, every parameter's data read along the way, and the parameter grads."""
    rng = random.Random(seed)
    own = params is None
    if own:
        params = [Value(rng.uniform(-1.0, 1.0), label=f"p{k}") for k in range(16)]
    picks = [(rng.randrange(16), rng.randrange(16)) for _ in range(ops // 17)]
    seen = []
    x = Value(0.1)
    for i, j in picks:
        p, q = params[i], params[j]
        seen.append(p.data)
        seen.append((p * q + x).data)  # garbage at once: compaction has nodes to drop and move
        h = (x * p + q).tanh() + (q * q).relu() * 0.01
        x = h * 0.5 + (x * x + 1.0) ** 0.5 * 0.1 - q.exp() * 0.001
    x.backward()
    grads = [p.grad for p in params] if own else None
    return x.data, seen, grads


def run_in_threads(targets):
    barrier = threading.Barrier(len(targets))
    results, errors = [None] * len(targets), []

    def run(k, target):
        try:
            barrier.wait()
            results[k] = target()
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k, t)) for k, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.slow
def test_private_graphs_in_threads_equal_single_threaded_runs(settled):
    expected = [workload(seed) for seed in range(THREADS)]
    assert len({e[0] for e in expected}) == THREADS  # four different graphs
    stop = threading.Event()

    def compactor():  # reclaims the arena every millisecond while the workers build
        # (not in a tight loop: an unfair mutex taken back to back starves the workers)
        n = 0
        while not stop.is_set():
            assert lib.mg_collect() == 0
            gc.collect(0)
            n += 1
            time.sleep(0.001)
        return n

    for _ in range(2):
        stop.clear()
        targets = [lambda s=seed: workload(s) for seed in range(THREADS)]

        def stopper(targets=targets):
            try:
                return run_in_threads(targets)
            finally:
                stop.set()

        got, collections = run_in_threads([stopper, compactor])
        assert collections > 0
        assert got == expected  # bit for bit: data, what was read, and every gradient


def test_threads_sharing_parameters(settled):
    rng = random.Random(7)
    params = [Value(rng.uniform(-1.0, 1.0)) for _ in range(16)]
    before = [p.data for p in params]

    # one thread at a time: each workload's output, and what its backward adds to the params
    expected, contributions = [], []
    for seed in range(THREADS):
        for p in params:
            p.grad = 0.0
        out, seen, _ = workload(seed, params, ops=20_000)
        expected.append((out, seen))
        contributions.append([p.grad for p in params])
    for p in params:
        p.grad = 0.0

    stop = threading.Event()

    def reader():  # reads the shared parameters without pause while the others work
        reads = 0
        while not stop.is_set():
            assert [p.data for p in params] == before
            assert all(math.isfinite(p.grad) for p in params)
            reads += 1
        return reads

    def workers():
        try:
            return run_in_threads(
                [lambda s=seed: workload(s, params, ops=20_000)[:2] for seed in range(THREADS)]
            )
        finally:
            stop.set()

    got, reads = run_in_threads([workers, reader])
    assert reads > 0
    assert got == expected
    assert [p.data for p in params] == before
    # every backward is one locked C call, so the shared grads are the sum of the four
    # contributions, added in whatever order the threads finished
    for k, p in enumerate(params):
        terms = [c[k] for c in contributions]
        assert math.isclose(p.grad, sum(terms), rel_tol=1e-12, abs_tol=1e-12 * sum(map(abs, terms)))


def test_values_die_in_other_threads(settled):
    start = lib.mg_handle_count()

    def make_and_drop(seed):
        values = [Value(float(i)) * seed for i in range(5_000)]
        total = sum(values)
        total.backward()
        return total.data

    got = run_in_threads([lambda s=seed: make_and_drop(s) for seed in range(1, THREADS + 1)])
    assert got == [seed * 5_000 * 4_999 / 2 for seed in range(1, THREADS + 1)]
    gc.collect()
    assert lib.mg_handle_count() == start


def test_c_calls_keep_the_gil():
    # build_ffi.py redefines cffi's GIL-release macros in its preamble (docs/design.md, Threads):
    # a cffi that stops using them would silently cost ~2x per operator.  The arena's lock keeps
    # calls atomic either way; this test only makes the change visible.
    assert lib.mg_gil_held() == 1


def test_threads_calling_one_model(settled):
    """Threads calling one model at once each get their own outputs: a call's buffer for the
    output handles is its own while it reads them (nn's spare buffers are taken, not shared)."""
    from micrograd_c.nn import MLP

    random.seed(7)
    model = MLP(2, [4, 4, 1])
    rng = random.Random(1)
    points = [(rng.uniform(-2, 2), rng.uniform(-2, 2)) for _ in range(300)]
    expected = [model([Value(x), Value(y)]).data for x, y in points]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads between nearly every bytecode
    try:

        def calls():
            return [model([Value(x), Value(y)]).data for x, y in points]

        results = run_in_threads([calls] * THREADS)
    finally:
        sys.setswitchinterval(old)
    assert results == [expected] * THREADS
