"""A Value stays valid while any Python code can reach it: finalizers of the garbage it belongs
to, resurrection, interpreter exit, subclasses and Ctrl-C.  A stale handle never reaches another
node.  (Issue: "Values freed while code can still reach them".)
"""

from __future__ import annotations

import copy
import gc
import pickle
import subprocess
import sys
import textwrap

import pytest
from micrograd.engine import Value as MValue

from micrograd_c._core import lib
from micrograd_c.engine import Value


def handles_after_collect() -> int:
    gc.collect()
    return lib.mg_handle_count()


@pytest.fixture
def no_leak():
    before = handles_after_collect()
    yield
    assert handles_after_collect() == before


class Holder:
    """Cyclic garbage with a finalizer, holding a Value: the collector finalizes both together,
    in no set order."""

    def __init__(self, value, on_finalize):
        self.value = value
        self.me = self
        self.on_finalize = on_finalize

    def __del__(self):
        self.on_finalize(self)


@pytest.mark.parametrize("engine", [MValue, Value], ids=["micrograd", "micrograd_c"])
def test_a_finalizer_of_the_same_garbage_reads_the_value(engine, no_leak):
    seen = []
    v = engine(3.0)
    Holder(v, lambda h: seen.append(h.value.data))
    del v
    gc.collect()
    assert seen == [3.0]


def test_many_values_in_garbage_with_finalizers_all_read_back(no_leak):
    seen = []
    for k in range(200):
        Holder(Value(float(k)) * 2.0, lambda h: seen.append(h.value.data))
    gc.collect()
    assert sorted(seen) == [2.0 * k for k in range(200)]


def test_a_finalizer_writing_its_value_never_changes_a_new_one(no_leak):
    made = []

    def write(holder):
        made.append(Value(9.0))  # would reuse the dead Value's handle slot
        holder.value.data = 0.0

    v = Value(3.0)
    Holder(v, write)
    del v
    gc.collect()
    assert [m.data for m in made] == [9.0]


def test_a_resurrected_value_keeps_its_node_and_aliases_nothing(no_leak):
    saved = []
    v = Value(5.0) * 1.0
    Holder(v, lambda h: saved.append(h.value))
    del v
    gc.collect()
    (kept,) = saved
    fresh = Value(7.0)
    assert (kept.data, fresh.data) == (5.0, 7.0)
    kept.data = 1.0
    assert (kept.data, fresh.data) == (1.0, 7.0)
    kept.backward()  # its graph is intact too
    (parent,) = [p for p in kept._prev if p.data == 5.0]
    assert parent.grad == 1.0
    saved.clear()  # the node goes back when the resurrected Value is freed (no_leak)


def test_a_stale_handle_is_refused_not_redirected():
    v = Value(1.0)
    stale = v._h
    v.__del__()  # released by hand: v now holds a stale handle
    others = [Value(float(k)) for k in range(50)]  # reuse its slot
    assert lib.mg_data(stale) != lib.mg_data(stale)  # NaN: no node
    with pytest.raises(ValueError, match="not live"):
        v.data = 2.0
    assert [o.data for o in others] == [float(k) for k in range(50)]
    object.__setattr__(v, "_h", -1)  # (its own finalizer must not release someone else's)


def test_parameters_checkpointed_by_a_generator_at_exit_are_the_real_ones():
    script = textwrap.dedent("""
        import random
        from micrograd_c.nn import MLP
        random.seed(3)
        model = MLP(2, [3, 1])
        expected = [p.data for p in model.parameters()]
        class Trainer:
            def __init__(self, model):
                self.model = model
                self.steps = self.loop()
                next(self.steps)
            def loop(self):
                try:
                    while True:
                        yield
                finally:
                    saved = [p.data for p in self.model.parameters()]
                    print("same" if saved == expected else f"different: {saved}")
        trainer = Trainer(model)
        trainer.me = trainer  # garbage only the collector (or the exit) frees
        del model
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "same", "")


# -- subclasses ----------------------------------------------------------------------------------


class Tagged(Value):
    def __init__(self, data, tag=""):
        super().__init__(data)
        self.tag = tag


class Slotted(Value):
    __slots__ = ("unit",)


@pytest.mark.parametrize(
    "trip",
    [copy.copy, copy.deepcopy, lambda v: pickle.loads(pickle.dumps(v))],
    ids=["copy", "deepcopy", "pickle"],
)
def test_copies_of_a_subclass_keep_its_class_and_attributes(trip, no_leak):
    tagged = Tagged(2.5, tag="w1")
    tagged.grad = 0.5
    twin = trip(tagged)
    assert type(twin) is Tagged and twin.tag == "w1"
    assert (twin.data, twin.grad) == (2.5, 0.5) and twin != tagged
    slotted = Slotted(1.5)
    slotted.unit = "m"
    twin = trip(slotted)
    assert type(twin) is Slotted and twin.unit == "m" and twin.data == 1.5


@pytest.mark.parametrize("engine", [MValue, Value], ids=["micrograd", "micrograd_c"])
def test_subclass_copies_like_micrographs(engine):
    class Named(engine):
        pass

    v = Named(4.0)
    v.name = "x"
    twin = copy.deepcopy(v)
    assert (type(twin), twin.name, twin.data) == (Named, "x", 4.0)


def test_a_subclass_finalizer_without_super_does_not_leak(no_leak):
    calls = []

    class Logged(Value):
        def __del__(self):
            calls.append(self.data)

    for k in range(100):
        Logged(float(k))
    gc.collect()
    assert calls == [float(k) for k in range(100)]


def test_a_subclass_finalizer_with_super_releases_once(no_leak):
    class Polite(Value):
        def __del__(self):
            super().__del__()

    v = Value(3.0)
    for _ in range(10):
        p = Polite(1.0)
        (shared,) = [x for x in (p * v)._prev if x == v]  # the node has other owners
        del p, shared
    assert v.data == 3.0  # a second release would have freed v's node under it


# -- Ctrl-C --------------------------------------------------------------------------------------

CTRL_C = textwrap.dedent("""
    import gc, random, signal, threading, time
    from micrograd_c._core import lib
    from micrograd_c.engine import Value
    from micrograd_c.nn import MLP

    random.seed(0)
    model = MLP(2, [8, 1])
    X = [[random.uniform(-1, 1), random.uniform(-1, 1)] for _ in range(20)]
    base = lib.mg_handle_count()
    sent = received = lost = 0
    handled = threading.Event()
    stopping = threading.Event()

    def interrupter():
        global sent, lost
        while not stopping.is_set():
            time.sleep(random.uniform(0.0003, 0.002))
            handled.clear()
            sent += 1
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # a Ctrl-C
            if not handled.wait(2.0):  # never acknowledged: counted, so the run cannot hang
                lost += 1

    deadline = time.time() + 4.0
    thread = threading.Thread(target=interrupter)
    started = False
    while True:
        try:
            # (The acknowledgement below runs with SIGINT blocked: the next Ctrl-C, sent the
            # moment handled.set() lets the interrupter go, waits for this line, so that it
            # lands in the loop and not in the handler, where a Ctrl-C would escape any loop.)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            if not started:  # (not is_alive(): a Ctrl-C may cut start() short)
                started = True
                thread.start()
            if time.time() > deadline:
                stopping.set()
            if stopping.is_set():
                # The interrupter's last Ctrl-C may still be on its way.  (join() with a timeout,
                # in a loop: a signal that arrives just before a blocking wait starts is seen only
                # when the wait ends, a CPython race that a plain join() would turn into a hang.)
                while thread.is_alive():
                    thread.join(0.05)
                time.sleep(0.05)
                break
            loss = sum((model(x) - 1.0) ** 2 for x in X)
            model.zero_grad()
            loss.backward()
            for p in model.parameters():
                p.data -= 0.01 * p.grad
        except KeyboardInterrupt:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            received += 1
            handled.set()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    loss = None
    gc.collect()
    Value(1.0).backward()  # gives back what an interrupt stranded
    gc.collect()
    print(sent, received, lost, lib.mg_handle_count() - base)
""")


@pytest.mark.slow
def test_ctrl_c_stops_the_loop_every_time_and_leaks_nothing():
    """Hundreds of simulated Ctrl-C at random points of a training loop: each one reaches the
    loop (none is swallowed by a finalizer), and no handle is left behind."""
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C], capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stderr
    sent, received, lost, leaked = map(int, done.stdout.split())
    assert sent > 50
    assert leaked == 0
    assert sent - lost <= received <= sent  # (a lost one may still turn up, late)
    # Rarely (a few times in thousands of SIGINTs, seen on loaded machines and under ASan) one
    # never reaches the loop and we have not found where it goes; it is never printed as an
    # exception ignored in a finalizer (below), and pressing Ctrl-C again stops the loop.
    assert lost <= max(1, sent // 100)
    assert "KeyboardInterrupt" not in done.stderr  # never printed as "Exception ignored"


# -- numbers and messages ------------------------------------------------------------------------


def test_an_int_exponent_beyond_2_53_backpropagates_as_micrograd():
    a, m = Value(-1.0), MValue(-1.0)
    (a ** (2**53 + 1)).backward()
    (m ** (2**53 + 1)).backward()
    assert a.grad == m.grad == 2.0**53
    b, n = Value(1.0000000000000002), MValue(1.0000000000000002)
    (b ** (2**53 + 3)).backward()
    (n ** (2**53 + 3)).backward()
    assert b.grad == n.grad


def test_a_user_float_error_is_the_users():
    class Broken:
        def __float__(self):
            raise ArithmeticError("sensor offline")

    with pytest.raises(ArithmeticError, match="sensor offline"):
        Value(Broken())
    with pytest.raises(ArithmeticError, match="sensor offline"):
        Value(1.0) * Broken()


def test_mixing_in_a_micrograd_value_says_so():
    with pytest.raises(TypeError, match="micrograd.engine.Value cannot be mixed"):
        Value(1.0) + MValue(2.0)


def test_a_label_too_long_for_the_arena_says_so():
    v = Value(1.0)
    with pytest.raises(ValueError, match="label.*too long"):
        v.label = "x" * 2**31
    assert v.label == ""
