"""A Value stays valid while any Python code can reach it: finalizers of the garbage it belongs
to, resurrection, interpreter exit, subclasses and Ctrl-C.  A stale handle never reaches another
node.  (Issue: "Values freed while code can still reach them".)
"""

from __future__ import annotations

import copy
import gc
import os
import pickle
import queue
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

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
    import gc, random, signal, time
    from micrograd_c._core import lib
    from micrograd_c.engine import Value
    from micrograd_c.nn import MLP

    random.seed(0)
    model = MLP(2, [8, 1])
    X = [[random.uniform(-1, 1), random.uniform(-1, 1)] for _ in range(20)]
    base = lib.mg_handle_count()
    deadline = time.time() + 4.0
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    print("ready", flush=True)
    while time.time() < deadline:
        try:
            # A Ctrl-C is let in for the training step alone: one that comes between steps
            # waits for the next, so that each lands inside this try, never on the loop's own
            # instructions (which would end the run), and none in the handler below.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
            loss = sum((model(x) - 1.0) ** 2 for x in X)
            model.zero_grad()
            loss.backward()
            for p in model.parameters():
                p.data -= 0.01 * p.grad
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        except KeyboardInterrupt:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            print("ack", flush=True)
    loss = None
    gc.collect()
    Value(1.0).backward()  # gives back what an interrupt stranded
    gc.collect()
    print("done", lib.mg_handle_count() - base, flush=True)
""")


def ctrl_c_run() -> tuple[int, int, int, int, str]:
    """Runs CTRL_C, pressing Ctrl-C (a SIGINT from this process) at random moments, each once
    the last was acknowledged.  Returns the SIGINTs sent, acknowledged and never acknowledged
    within 2 s, the handles left behind, and the child's stderr.  The child runs no Python
    thread but its main one (a Python thread could make CPython 3.11 itself lose a signal:
    build_ffi.py), so every SIGINT must reach the loop."""
    child = subprocess.Popen(
        [sys.executable, "-c", CTRL_C],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read_lines() -> None:
        for line in child.stdout:
            lines.put(line.strip())

    reader = threading.Thread(target=read_lines)
    reader.start()
    rng = random.Random(0)
    sent = acknowledged = lost = 0
    leaked = -1
    try:
        assert lines.get(timeout=60) == "ready"
        while True:
            time.sleep(rng.uniform(0.0003, 0.002))
            child.send_signal(signal.SIGINT)
            sent += 1
            try:
                line = lines.get(timeout=2.0)
            except queue.Empty:
                lost += 1
                continue
            if line.startswith("done"):  # the loop ended first: that SIGINT stays blocked
                sent -= 1
                leaked = int(line.split()[1])
                break
            acknowledged += 1
    finally:
        _, stderr = child.communicate(timeout=60)
        reader.join()
    assert child.returncode == 0, stderr
    return sent, acknowledged, lost, leaked, stderr


@pytest.mark.slow
def test_ctrl_c_stops_the_loop_every_time_and_leaks_nothing():
    """Hundreds of Ctrl-C at random points of a training loop: each one reaches the loop (none
    is swallowed by a finalizer, none is lost on its way back from one), and no handle is left
    behind."""
    sent, acknowledged, lost, leaked, stderr = ctrl_c_run()
    assert sent > 50
    assert lost == 0 and acknowledged == sent
    assert leaked == 0
    assert "KeyboardInterrupt" not in stderr  # never printed as "Exception ignored"


def test_a_ctrl_c_inside_the_reclaim_leaves_it_for_the_next_backward(monkeypatch, no_leak):
    """The next backward() gives stranded handles back; a Ctrl-C that lands while it counts the
    owners must leave that to the backward() after, not forget it."""
    from micrograd_c import engine

    lib.mg_leaf(1.0)  # a handle no Value owns, as an interrupt can leave one
    engine._note_stranded()
    stranded = lib.mg_handle_count()
    count_owners = gc.get_objects

    def interrupted(*args):
        monkeypatch.setattr(gc, "get_objects", count_owners)
        raise KeyboardInterrupt

    monkeypatch.setattr(gc, "get_objects", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Value(1.0).backward()
    assert lib.mg_handle_count() == stranded
    Value(1.0).backward()
    assert lib.mg_handle_count() == stranded - 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_a_child_forked_by_another_thread_hands_ctrl_c_to_its_main_thread():
    """In a child forked by a thread other than the main one, that thread is the child's main
    thread: a Ctrl-C caught in a finalizer must go back to it, not to a thread that the child
    does not have."""
    script = textwrap.dedent("""
        import os, threading
        from micrograd_c import engine

        def fork():
            pid = os.fork()
            if pid == 0:  # the child: its only thread is this one
                target = engine._redeliver.args[1][0]
                os._exit(0 if target == threading.get_ident() else 1)
            _, status = os.waitpid(pid, 0)
            codes.append(os.waitstatus_to_exitcode(status))

        codes = []
        thread = threading.Thread(target=fork)
        thread.start()
        thread.join()
        print(codes[0])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.split() == ["0"], done.stderr


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
