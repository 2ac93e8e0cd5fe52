"""Behaviour the rest of the suite reaches only in subprocesses (which coverage does not count)
or not at all: a Ctrl-C on an operator's way is not swallowed and what it may strand is given
back; a Ctrl-C raised in a finalizer comes back to the main thread; and a few of micrograd's own
corners (Value(x, []), Module.parameters(), mixed inputs to a neuron, a subclass's copy).
"""

from __future__ import annotations

import copy
import gc
import math
import random
import signal
import sys
import time

import micrograd.nn as mnn
import pytest
from micrograd.engine import Value as MValue

from micrograd_c import engine, nn
from micrograd_c._core import lib
from micrograd_c.engine import Value


class CtrlC:
    """A number whose conversion is cut short by a Ctrl-C, as one landing inside an operator."""

    def __float__(self) -> float:
        raise KeyboardInterrupt


def ctrl_c_children():
    """Children that a Ctrl-C interrupts while micrograd's set() reads them."""
    yield Value(1.0)
    raise KeyboardInterrupt


@pytest.mark.parametrize(
    "interrupted",
    [lambda v: v + CtrlC(), lambda v: v * CtrlC(), lambda v: Value(3.0, ctrl_c_children(), "f")],
    ids=["add", "mul", "Value(x, children)"],
)
def test_a_ctrl_c_inside_an_operator_reaches_the_caller_and_its_strays_are_given_back(interrupted):
    a, b = Value(2.0, label="a"), Value(-3.0)
    c = a * b
    shown = c._prev  # Values the registry of _prev holds a reference for
    gc.collect()
    base = lib.mg_handle_count()
    # A handle no Value owns: what an interrupt between a C call's return and the store of its
    # handle leaves behind (made here directly: a real one lands at a random instruction).
    stray = lib.mg_leaf(7.0)
    assert stray >= 0.0 and lib.mg_handle_count() == base + 1
    with pytest.raises(KeyboardInterrupt):
        interrupted(a)
    gc.collect()
    assert lib.mg_handle_count() == base + 1  # the stray waits for the next backward()

    c.backward()  # gives back every handle no Value owns, then runs as usual
    assert math.isnan(lib.mg_data(stray))  # stale now: its slot moved on
    assert lib.mg_handle_count() == base
    assert (a.data, b.data, c.data, a.label) == (2.0, -3.0, -6.0, "a")
    assert (a.grad, b.grad, c.grad) == (-3.0, 2.0, 1.0)
    assert shown == {a, b} and {v.data for v in shown} == {2.0, -3.0}
    del shown  # the registry's own references go too: they must have been counted
    gc.collect()
    (c + a).backward()  # nothing owned was freed: the graph is whole, as micrograd's
    ma, mb = MValue(2.0), MValue(-3.0)
    mc = ma * mb
    mc.backward()
    (mc + ma).backward()
    assert (a.grad, b.grad, c.grad) == (ma.grad, mb.grad, mc.grad)


def test_without_an_interrupt_backward_frees_no_unowned_handle():
    # Only an interrupt triggers the reclaiming pass: a handle a C caller holds is its own.
    stray = lib.mg_leaf(7.0)
    try:
        Value(1.0).backward()
        assert lib.mg_data(stray) == 7.0
    finally:
        lib.mg_release_now(stray)


def test_a_ctrl_c_raised_in_a_finalizer_comes_back_to_the_main_thread(monkeypatch):
    class Interrupting(Value):
        def __del__(self):
            raise KeyboardInterrupt  # Python would print it as unraisable and go on

    # pytest puts its own unraisable hook in place around each test: restore ours.  And Ctrl-C
    # as a plain program has it (an earlier test's Jupyter client may have changed SIGINT's).
    monkeypatch.setattr(sys, "unraisablehook", engine._deliver_interrupt)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _finalizer_hands_back(Interrupting)
    finally:
        signal.signal(signal.SIGINT, previous)


def _finalizer_hands_back(Interrupting: type[Value]) -> None:
    gc.collect()
    base = lib.mg_handle_count()
    caught = False
    try:
        v = Interrupting(1.0)
        del v  # finalizer: KeyboardInterrupt, then Value's own release (not skipped)
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            time.sleep(0.01)  # the handed-back Ctrl-C arrives here
    except KeyboardInterrupt:
        caught = True
    assert caught
    assert lib.mg_handle_count() == base
    Value(1.0).backward()  # the interrupt marked handles as possibly stranded: reclaim runs
    assert lib.mg_handle_count() == base


def test_other_unraisable_errors_go_to_the_previous_hook(monkeypatch, capsys):
    class Failing:
        def __del__(self):
            raise RuntimeError("finalizer trouble")

    monkeypatch.setattr(sys, "unraisablehook", engine._deliver_interrupt)
    f = Failing()
    del f
    assert "finalizer trouble" in capsys.readouterr().err


def test_a_value_with_no_children_and_no_op_is_a_leaf_as_in_micrograd():
    v, m = Value(2.5, []), MValue(2.5, [])
    assert (v._op, v._prev, v.data) == (m._op, set(), m.data) == ("", set(), 2.5)
    assert lib.mg_op(v._h) == lib.MG_LEAF  # not a hand-built node: forward() treats it so
    (v * v).backward()
    assert v.grad == 5.0


def test_a_bare_subclass_value_copies_as_its_class():
    class Tagged(Value):
        pass

    t = Tagged(4.0)
    t.grad = 0.5
    u = copy.copy(t)
    assert type(u) is Tagged and (u.data, u.grad) == (4.0, 0.5) and u != t
    assert u.__dict__ == {}


def test_a_module_has_no_parameters_as_in_micrograd():
    assert nn.Module().parameters() == mnn.Module().parameters() == []
    nn.Module().zero_grad()  # nothing to zero: no error


def twin_neurons(nin: int):
    random.seed(7)
    ours = nn.Neuron(nin)
    random.seed(7)
    theirs = mnn.Neuron(nin)
    assert [p.data for p in ours.parameters()] == [p.data for p in theirs.parameters()]
    return ours, theirs


def test_a_neuron_on_a_value_then_a_number_is_micrograds():
    ours, theirs = twin_neurons(3)
    x, mx = Value(0.5), MValue(0.5)
    out, mout = ours([x, -2.0, 3]), theirs([mx, -2.0, 3])
    assert type(out) is Value and out.data == mout.data
    out.backward()
    mout.backward()
    assert x.grad == mx.grad
    assert [p.grad for p in ours.parameters()] == [p.grad for p in theirs.parameters()]


def test_a_neuron_with_a_subclass_weight_runs_micrograds_loop():
    class Traced(Value):
        multiplied = 0

        def __mul__(self, other):
            Traced.multiplied += 1
            return super().__mul__(other)

    ours, theirs = twin_neurons(2)
    ours.w[1] = Traced(ours.w[1].data)  # its own operator must run: no C shortcut
    out, mout = ours([1.5, -0.25]), theirs([1.5, -0.25])
    assert Traced.multiplied == 1
    assert out.data == mout.data
