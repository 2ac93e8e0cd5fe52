"""micrograd's `Value`, as a thin proxy over a node in the C graph arena.

A Value holds one integer: a handle the C core maps to its node.  Every operator makes its node
(or, for `Value + 2.0`, the constant's leaf and the node) in one C call; `backward()` is one C
call that sweeps the graph without recursion.  Operators that micrograd composes from others
(`-a`, `a - b`, `a / b`, the reflected forms) are composed the same way here, so the graph is
micrograd's node for node.

The rest of this module is about lifetimes (docs/design.md, "Lifetimes and identity"):
- a Value's finalizer releases its handle, except while the garbage collector runs: then the
  garbage's other finalizers may still read it, so the release waits until it is really gone;
- `_prev` hands out one object per node for as long as that object lives (the lecture's
  `draw_dot` names nodes by `id()`);
- a Ctrl-C is never swallowed by a finalizer, and a handle it strands is given back.
"""

from __future__ import annotations

import _thread
import atexit
import copyreg
import functools
import gc
import operator
import os
import signal
import sys
import threading
import weakref
from collections.abc import Iterable
from typing import Any, Callable, Union

from micrograd_c._core import check, error, ffi, get_text, lib, set_text

__all__ = ["Value"]

Number = Union[int, float]

# The C calls on the hot path, bound once: a module global is cheaper than `lib.name`.  Typed
# here, as csrc/graph.h declares them (cffi's functions are untyped): a declaration costs no call.
# A handle (mg_handle) is a double; a status an int.
_mg_add: Callable[[float, float], float]
_mg_mul: Callable[[float, float], float]
_mg_add_const: Callable[[float, float], float]
_mg_mul_const: Callable[[float, float], float]
_mg_data: Callable[[float], float]
_mg_grad: Callable[[float], float]
_mg_leaf: Callable[[float], float]
_mg_set_data: Callable[[float, float], int]
_mg_set_grad: Callable[[float, float], int]
_release: Callable[[float], int]
_release_now: Callable[[float], None]
_mg_add, _mg_mul = lib.mg_add, lib.mg_mul
_mg_add_const, _mg_mul_const = lib.mg_add_const, lib.mg_mul_const
_mg_data, _mg_grad, _mg_leaf = lib.mg_data, lib.mg_grad, lib.mg_leaf
_mg_set_data, _mg_set_grad = lib.mg_set_data, lib.mg_set_grad
_release, _release_now = lib.mg_release, lib.mg_release_now

_NO_CHILDREN: tuple[Value, ...] = ()

_OP_TEXT = {
    lib.MG_LEAF: "",
    lib.MG_ADD: "+",
    lib.MG_MUL: "*",
    lib.MG_RELU: "ReLU",
    lib.MG_TANH: "tanh",
    lib.MG_EXP: "exp",
}

# Exceptions an operator raises itself (bad input, float errors): anything else escaping an
# operator came from outside, like a Ctrl-C, and may have stranded a handle (see _stranded).
_OWN_ERRORS = (TypeError, ValueError, ArithmeticError, MemoryError, AssertionError)


# The types of plain numbers: float, int, and each numpy number type once seen (_is_number).
# An operator skips the checks for arrays and for what is not a number with these, and hands
# them to cffi as they are: cffi reads a double with the float() Python's arithmetic uses.
_NUMBER_TYPES = {float, int}


def _to_float(x: Any) -> float:
    """A number for the arena, accepted and refused as micrograd's arithmetic would.

    Floats and their subclasses (numpy.float64) go to C as they are: cffi reads their double."""
    kind = type(x)
    if isinstance(x, float):
        if kind not in _NUMBER_TYPES:
            _is_number(x)  # (numpy.float64: remembered, so that operators pass it on as it is)
        return x
    if kind in _NUMBER_TYPES:
        return float(x)  # (OverflowError for an int no float holds, as Python's arithmetic)
    if isinstance(x, (str, bytes, bytearray)):  # float() would parse them; arithmetic would not
        raise TypeError(f"a Value holds a number, not {kind.__name__}")
    if not (hasattr(kind, "__float__") or hasattr(kind, "__index__")):
        if kind.__name__ == "Value" and kind.__module__ == "micrograd.engine":
            raise TypeError(
                "a micrograd.engine.Value cannot be mixed with micrograd_c's Value: "
                "build the whole graph with one engine"
            )
        raise TypeError(f"a Value holds a number, not {kind.__name__}")
    number = float(x)  # a user __float__'s own error is the user's to see
    _is_number(x)
    return number


def _is_number(x: Any) -> bool:
    """Whether x is a numpy number or bool scalar (not numpy.str_, a str), whose float() is its
    number; its type then joins _NUMBER_TYPES.  (Only numpy's: a user type there would be kept
    alive for good.)"""
    numpy = sys.modules.get("numpy")
    if numpy is None or not isinstance(x, (numpy.number, numpy.bool_)):
        return False
    _NUMBER_TYPES.add(type(x))
    return True


# -- releases put off while the garbage collector runs ------------------------------------------
#
# The collector runs every finalizer of a garbage set before it frees any of it, so one
# finalizer may read a Value whose own finalizer already ran.  While it runs, C puts releases
# off (mg_release returns 1); the finalizer then only notes the Value, and its handle is released
# when the Value is really freed (a weak reference's callback; a resurrected Value keeps it).

_held: dict[weakref.ref[Value], float] = {}  # finalized Values whose release was put off
_dead: list[float] = []  # handles of Values freed during a collection: released when it ends


def _hold(value: Value) -> None:
    _held[weakref.ref(value, _freed)] = value._h


def _freed(
    ref: weakref.ref[Value],
    _held: dict[weakref.ref[Value], float] = _held,
    _dead: list[float] = _dead,
    _release: Callable[[float], int] = _release,
) -> None:
    handle = _held.pop(ref)
    if _release(handle):  # still collecting: another finalizer may yet read through the node
        _dead.append(handle)


def _on_gc(
    phase: str,
    info: dict[str, int],
    _set_mode: Callable[[int], int] = lib.mg_set_release_mode,
    _dead: list[float] = _dead,
    _release_now: Callable[[float], None] = _release_now,
) -> None:
    if phase == "start":
        _set_mode(lib.MG_RELEASE_LATER)
        return
    _set_mode(lib.MG_RELEASE_NOW)
    while _dead:
        _release_now(_dead.pop())


gc.callbacks.append(_on_gc)
# (An interrupt raised in these callbacks is reported as unraisable: _deliver_interrupt.)
_on_gc._hands_back_interrupts = _freed._hands_back_interrupts = True  # type: ignore[attr-defined]
# From interpreter exit on, nothing is released: module teardown runs finalizers in no useful
# order, and the process is about to return all of its memory anyway.
atexit.register(lib.mg_set_release_mode, lib.MG_RELEASE_NEVER)


# -- interrupts ---------------------------------------------------------------------------------
#
# A KeyboardInterrupt raised inside a finalizer is printed and dropped by Python, and one that
# lands between a C call's return and the store of its handle strands that handle (it would pin
# its graph for ever).  Finalizers hand a Ctrl-C back to the main thread; a stranded handle is
# noted, and the next backward() gives back every handle no Python object owns.

_stranded = [False]
# Handing a Ctrl-C back: from a new thread, so that it is not raised again at once inside the
# finalizer (or hook) that caught it, but where the main thread runs next.  A real SIGINT where
# there are signals to a thread (it also wakes a main thread blocked on a lock, as Ctrl-C does);
# a C callable, with no Python frame of its own for another interrupt to land in.
_redeliver: Callable[[], object]


def _aim_at_main_thread() -> None:
    global _redeliver
    if hasattr(signal, "pthread_kill"):
        _redeliver = functools.partial(
            _thread.start_new_thread,
            signal.pthread_kill,
            (threading.main_thread().ident, signal.SIGINT),
        )
    else:  # Windows  # pragma: no cover (no pthread_kill there; CI runs on Linux)
        _redeliver = functools.partial(_thread.start_new_thread, _thread.interrupt_main, ())


_aim_at_main_thread()
if hasattr(os, "register_at_fork"):  # a child forked by another thread has that one as main
    os.register_at_fork(after_in_child=_aim_at_main_thread)


def _note_stranded(_stranded: list[bool] = _stranded) -> None:
    _stranded[0] = True


def _reclaim_stranded() -> None:
    """Gives back the handles that no Value (or pending release) owns: one pass over the objects
    the garbage collector tracks, which include every Value.  The note is cleared only once
    they are back: a Ctrl-C landing in here leaves it for the next backward()."""
    held = {id(v) for v in (ref() for ref in list(_held)) if v is not None}  # owned by _held
    owned = [
        getattr(v, "_h", -1) for v in gc.get_objects() if isinstance(v, Value) and id(v) not in held
    ]
    owned += [handle for ref, handle in list(_held.items()) if ref() is not None]
    owned += _dead
    with _shown_lock:
        owned += [ref.handle for ref in _shown.values() if ref() is not None]
    check(lib.mg_reclaim_unowned(ffi.new("mg_handle[]", owned), len(owned)))
    _stranded[0] = False


def _deliver_interrupt(
    unraisable: Any, _previous: Callable[[Any], object] = sys.unraisablehook
) -> None:
    """sys.unraisablehook: a Ctrl-C that landed on a Value finalizer's first instruction (before
    its own handler) goes back to the main thread instead of being printed and lost."""
    try:
        finalizer = unraisable.object
        if unraisable.exc_type is KeyboardInterrupt and getattr(
            finalizer, "_hands_back_interrupts", False
        ):
            _stranded[0] = True  # that finalizer or callback may not have released its handle
            _redeliver()
            return
        _previous(unraisable)
    except KeyboardInterrupt:  # another Ctrl-C, landing here: hand it on too
        _redeliver()


sys.unraisablehook = _deliver_interrupt


# -- one object per node, as _prev shows it -----------------------------------------------------


class _ShownRef(weakref.ref):  # type: ignore[type-arg]
    """The registry's weak reference to the Value _prev handed out for a node.  The entry owns a
    reference to the handle of its own, released when that Value is freed, so a Value fetched
    from the registry while its finalizer runs (another thread) still has its node."""

    __slots__ = ("handle",)
    handle: float


_shown: dict[float, _ShownRef] = {}
_shown_lock = threading.RLock()  # re-entrant: a collection inside may free a registered Value


def _shown_value(handle: float) -> Value:
    """The one Value _prev shows for a node, given a new reference to its handle from C."""
    if handle < 0.0:
        raise error(handle)
    with _shown_lock:
        ref = _shown.get(handle)
        value: Value | None = ref() if ref is not None else None  # (_ShownRef's ref() is untyped)
        if value is not None:
            _release_now(handle)  # the entry and the Value hold the node already
            return value
        value = _new_value(Value)
        value._h = handle
        ref = _ShownRef(value, _unshow)
        ref.handle = check(lib.mg_retain(handle))
        _shown[handle] = ref
        return value


def _unshow(
    ref: _ShownRef,
    _shown: dict[float, _ShownRef] = _shown,
    _dead: list[float] = _dead,
    _lock: Any = _shown_lock,
    _release: Callable[[float], int] = _release,
) -> None:
    with _lock:
        if _shown.get(ref.handle) is ref:
            del _shown[ref.handle]
    if _release(ref.handle):
        _dead.append(ref.handle)


_unshow._hands_back_interrupts = True  # type: ignore[attr-defined]


# -- the Value ----------------------------------------------------------------------------------


class Value:
    """stores a single scalar value and its gradient"""

    __slots__ = ("_h", "__weakref__")

    # The handle of its node in the C arena; this Value owns one reference to it.  A double
    # holding a whole number (graph.h says why), so compare it with 0.0, not 0: float to float
    # is the fast comparison.
    _h: float

    def __init__(
        self, data: Any, _children: Iterable[Value] = _NO_CHILDREN, _op: str = "", label: str = ""
    ) -> None:
        if type(data) is not float and type(data) not in _NUMBER_TYPES:
            data = _to_float(data)
        try:
            if _children is _NO_CHILDREN and not _op:  # the common case: a leaf
                self._h = handle = _mg_leaf(data)
                if handle < 0.0:
                    raise error(handle)
            else:  # micrograd keeps a set of children (and set(None) is its TypeError)
                self._h = _make_custom(data, set(_children), _op)
        except _OWN_ERRORS:
            raise
        except BaseException:
            _note_stranded()
            raise
        # (Calling __init__ again on a live Value would keep its old node alive; checking for
        # that with hasattr() would triple the cost of every Value(x).)
        if label != "":  # (not `if label:`: a falsy non-str label is a TypeError too)
            set_text(self._h, lib.MG_TEXT_LABEL, label)

    # (_release bound as a default: globals die at exit)
    def __del__(self, _release: Callable[[float], int] = _release) -> None:
        try:
            if _release(self._h):  # put off: the collector is running (never so at exit)
                _hold(self)
        except AttributeError:  # __init__ failed before the node was made
            pass
        except KeyboardInterrupt:  # raised here it would be printed and lost: hand it back
            _stranded[0] = True  # (it may have landed before _hold)
            _redeliver()

    __del__._hands_back_interrupts = True  # type: ignore[attr-defined]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass's own __del__ need not call Value's: unless it names super().__del__, the
        node is released after it runs, so forgetting super() never leaks the graph."""
        super().__init_subclass__(**kwargs)
        finalizer = cls.__dict__.get("__del__")
        if finalizer is None or "__del__" in getattr(finalizer, "__code__", _NO_CODE).co_names:
            return

        def __del__(self: Value) -> None:
            try:
                finalizer(self)
            finally:
                Value.__del__(self)

        __del__._hands_back_interrupts = True  # type: ignore[attr-defined]
        # (assignment: Value.__del__'s signature includes its bound-default `_release`.)
        cls.__del__ = __del__  # type: ignore[method-assign,assignment]

    # -- data, grad and the graph, read from the arena ---------------------------------------

    @property
    def data(self) -> float:
        return _mg_data(self._h)

    @data.setter
    def data(self, value: Any) -> None:
        if type(value) is not float and type(value) not in _NUMBER_TYPES:
            value = _to_float(value)
        status = _mg_set_data(self._h, value)
        if status:
            raise error(status)

    @property
    def grad(self) -> float:
        return _mg_grad(self._h)

    @grad.setter
    def grad(self, value: Any) -> None:
        if type(value) is not float and type(value) not in _NUMBER_TYPES:
            value = _to_float(value)
        status = _mg_set_grad(self._h, value)
        if status:
            raise error(status)

    @property
    def _prev(self) -> set[Value]:
        handles = ffi.new("mg_handle[2]")
        try:
            count = check(lib.mg_parents(self._h, handles))
            return {_shown_value(handles[k]) for k in range(count)}
        except _OWN_ERRORS:
            raise
        except BaseException:
            _note_stranded()
            raise

    @property
    def _op(self) -> str:
        op = check(lib.mg_op(self._h))
        if op == lib.MG_POW:
            return f"**{lib.mg_exponent(self._h)}"
        if op == lib.MG_POWI:
            return f"**{int(lib.mg_exponent(self._h))}"
        if op == lib.MG_CUSTOM:
            return get_text(self._h, lib.MG_TEXT_OP)
        return _OP_TEXT[op]

    @property
    def label(self) -> str:
        return get_text(self._h, lib.MG_TEXT_LABEL)

    @label.setter
    def label(self, text: str) -> None:
        set_text(self._h, lib.MG_TEXT_LABEL, text)

    # -- micrograd's primitives: one C call each ----------------------------------------------

    # + and * are the hot path (every loss and every update builds with them), so they make
    # their Value in place rather than through _make(): a Python call less per operator.
    # The new Value exists before the C call, so that its handle is stored the moment it comes
    # back; an interrupt can land only on the call's return itself (see _stranded).

    def __add__(self, other: Value | Number) -> Value:
        try:
            out = _new_value(Value)
            if isinstance(other, Value):
                out._h = handle = _mg_add(self._h, other._h)
            else:
                out._h = handle = _mg_add_const(
                    self._h,
                    other
                    if type(other) is float or type(other) in _NUMBER_TYPES
                    else _to_float(other),
                )
        except _OWN_ERRORS:
            raise
        except BaseException:
            _note_stranded()
            raise
        if handle < 0.0:
            raise error(handle)
        return out

    def __mul__(self, other: Value | Number) -> Value:
        try:
            out = _new_value(Value)
            if isinstance(other, Value):
                out._h = handle = _mg_mul(self._h, other._h)
            else:
                out._h = handle = _mg_mul_const(
                    self._h,
                    other
                    if type(other) is float or type(other) in _NUMBER_TYPES
                    else _to_float(other),
                )
        except _OWN_ERRORS:
            raise
        except BaseException:
            _note_stranded()
            raise
        if handle < 0.0:
            raise error(handle)
        return out

    def __pow__(self, other: Number) -> Value:
        if not isinstance(other, (int, float)):
            raise AssertionError("only supporting int/float powers for now")
        if isinstance(other, int):  # micrograd's backward uses other - 1 in exact int arithmetic
            exponent, minus_one = float(other), float(other - 1)
        else:
            exponent = float(other)
            minus_one = exponent - 1.0
        return _make(lib.mg_pow, self._h, exponent, minus_one, isinstance(other, int))

    def relu(self) -> Value:
        return _make(lib.mg_relu, self._h)

    def tanh(self) -> Value:
        return _make(lib.mg_tanh, self._h)

    def exp(self) -> Value:
        return _make(lib.mg_exp, self._h)

    def backward(self) -> None:
        """Sets this Value's grad to 1 and adds d(self)/d(node) into every node it depends on."""
        if _stranded[0]:
            _reclaim_stranded()
        check(lib.mg_backward(self._h))

    def forward(self) -> None:
        """Recomputes this Value from the current data of its leaves (not in micrograd).

        Every node this Value reaches gets, in the order it was built, the data that building
        the same expression again from those leaves gives, bit for bit, and a grad of 0; so
        after setting leaves' `.data`, `forward()`, `zero_grad()` and `backward()` give what a
        fresh build would, without rebuilding the graph in Python.  Leaves keep their data and
        grad, and so do nodes built by hand, `Value(x, (a, b), 'op')`: they have no forward
        rule, so their data is kept as given, like a leaf's.  Only the graph's arithmetic is
        re-run: a Python `if` on some `.data` that chose how the graph was built is not.

        Raises what building would: ZeroDivisionError (`0.0 ** -1`), OverflowError, ValueError
        (a negative number to a fractional power).  Then no leaf has changed; the nodes built
        before the failing one hold their new data, the failing one and those built after it
        hold NaN, until a forward() that succeeds.
        """
        check(lib.mg_forward(self._h))

    def _backward(self) -> None:
        """This node's local backward step alone, as in the lecture's manual backprop."""
        check(lib.mg_local_backward(self._h))

    # -- composed exactly as micrograd composes them ------------------------------------------

    # A numpy number or array on the left asks the Value first (numpy defers to a type whose
    # __array_ufunc__ is None): a numpy scalar then costs what a Python number does, instead of
    # a trip through a 0-d object array.  An array still gets micrograd's result: an object
    # array of Values, from numpy's own elementwise loop (_elementwise).  (The annotations are
    # for numbers: hence the `type: ignore[no-any-return]` on the returns of such an array.)
    __array_ufunc__ = None

    def __neg__(self) -> Value:  # -self
        return self * -1

    def __radd__(self, other: Number) -> Value:  # other + self
        if type(other) not in _NUMBER_TYPES and _is_array(other):
            return _elementwise(operator.add, other, self)  # type: ignore[no-any-return]
        return self + other

    def __sub__(self, other: Value | Number) -> Value:  # self - other
        return self + (-other)

    def __rsub__(self, other: Number) -> Value:  # other - self
        if type(other) not in _NUMBER_TYPES and _is_array(other):
            return _elementwise(operator.sub, other, self)  # type: ignore[no-any-return]
        return other + (-self)

    def __rmul__(self, other: Number) -> Value:  # other * self
        if type(other) not in _NUMBER_TYPES and _is_array(other):
            return _elementwise(operator.mul, other, self)  # type: ignore[no-any-return]
        return self * other

    def __truediv__(self, other: Value | Number) -> Value:  # self / other
        return self * other**-1

    def __rtruediv__(self, other: Number) -> Value:  # other / self
        if type(other) not in _NUMBER_TYPES and _is_array(other):
            return _elementwise(operator.truediv, other, self)  # type: ignore[no-any-return]
        return other * self**-1

    # -- identity: two Values are equal when they are the same node ---------------------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Value):
            return self._h == other._h  # one handle per node
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._h)

    def __reduce__(self) -> tuple[Any, ...]:
        # The node's history lives in the arena of this process: a copy is a leaf.  A
        # subclass's copy is of its class, with its own attributes.
        args = (self.data, self.grad, self.label)
        cls = type(self)
        if cls is Value:
            return (_leaf_copy, args)
        return (_leaf_copy, (*args, cls), _subclass_state(self))

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"


_new_value = object.__new__


def _is_array(x: Any) -> bool:
    """A numpy array of one or more dimensions (a numpy scalar is a number here)."""
    return not _is_number(x) and bool(getattr(x, "ndim", 0)) and hasattr(x, "__array_ufunc__")


def _elementwise(op: Callable[[Any, Any], Any], array: Any, value: Value) -> Any:
    """array (op) value as numpy computes it for micrograd's Value, which numpy does not know:
    elementwise in Python, each element a Python number, giving an object array of Values."""
    import numpy

    return op(array, numpy.asarray(value, dtype=object))


_NO_CODE = compile("", "", "exec")


def _adopt(handle: float) -> Value:
    """A Value owning `handle`, a new reference from the C core (or a status to raise)."""
    if handle < 0.0:
        raise error(handle)
    value = _new_value(Value)
    value._h = handle
    return value


def _make(make: Callable[..., float], *args: Any) -> Value:
    """A Value owning the new handle that the C call make(*args) returns (or its status)."""
    try:
        value = _new_value(Value)
        value._h = handle = make(*args)
    except _OWN_ERRORS:
        raise
    except BaseException:
        _note_stranded()
        raise
    if handle < 0.0:
        raise error(handle)
    return value


def _make_custom(data: float, children: set[Any], op: Any) -> float:
    """A node built by hand, `Value(x, (a, b), 'op')`: micrograd gives it no backward."""
    if not children and not op:  # Value(x, []): a plain leaf after all
        return check(_mg_leaf(data))
    for child in children:
        if not isinstance(child, Value):
            raise TypeError(f"children must be Values, not {type(child).__name__}")
    if len(children) > 2:
        raise ValueError("a micrograd_c node has at most two distinct children")
    handles = [child._h for child in children]
    handle: float = check(lib.mg_custom(data, len(handles), ffi.new("mg_handle[]", handles or [0])))
    if op:
        try:
            set_text(handle, lib.MG_TEXT_OP, op)
        except BaseException:
            lib.mg_release_now(handle)
            raise
    return handle


def _subclass_state(value: Value) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    """A subclass instance's own attributes, as copy and pickle restore them: (its __dict__,
    its slots but the handle)."""
    attributes = getattr(value, "__dict__", None) or None
    slots = {
        name: getattr(value, name)
        for name in copyreg._slotnames(type(value))  # type: ignore[attr-defined]
        if name not in ("_h", "__weakref__") and hasattr(value, name)
    }
    if attributes is None and not slots:
        return None
    return attributes, slots


def _leaf_copy(data: float, grad: float, label: str, cls: type[Value] = Value) -> Value:
    value = _make(_mg_leaf, data) if cls is Value else _new_value(cls)
    if cls is not Value:  # its __init__ may take other arguments: pickle never calls it
        value._h = check(_mg_leaf(data))
    value.grad = grad
    if label:
        value.label = label
    return value
