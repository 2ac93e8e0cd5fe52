"""micrograd's `Value`, as a thin proxy over a node in the C graph arena.

A Value holds one integer: a handle the C core maps to its node.  Every operator makes its node
(or, for `Value + 2.0`, the constant's leaf and the node) in one C call; `backward()` is one C
call that sweeps the graph without recursion.  Operators that micrograd composes from others
(`-a`, `a - b`, `a / b`, the reflected forms) are composed the same way here, so the graph is
micrograd's node for node.
"""

from __future__ import annotations

from typing import Any, Iterable, Union

from micrograd_c._core import check, error, ffi, get_text, lib, set_text

__all__ = ["Value"]

Number = Union[int, float]

# The C calls on the hot path, bound once: a module global is cheaper than `lib.name`.
_mg_add, _mg_mul = lib.mg_add, lib.mg_mul
_mg_add_const, _mg_mul_const = lib.mg_add_const, lib.mg_mul_const
_mg_data, _mg_grad, _mg_leaf = lib.mg_data, lib.mg_grad, lib.mg_leaf

_NO_CHILDREN: tuple[Value, ...] = ()

_OP_TEXT = {
    lib.MG_LEAF: "",
    lib.MG_ADD: "+",
    lib.MG_MUL: "*",
    lib.MG_RELU: "ReLU",
    lib.MG_TANH: "tanh",
    lib.MG_EXP: "exp",
}


def _to_float(x: Any) -> float:
    """A number for the arena, accepted and refused as micrograd's arithmetic would."""
    if type(x) is float:
        return x
    if isinstance(x, (str, bytes, bytearray)):  # float() would parse them; arithmetic would not
        raise TypeError(f"a Value holds a number, not {type(x).__name__}")
    try:
        return float(x)
    except TypeError:
        raise TypeError(f"a Value holds a number, not {type(x).__name__}") from None


class Value:
    """stores a single scalar value and its gradient"""

    __slots__ = ("_h", "__weakref__")

    _h: int  # handle of this Value's node in the C arena; this Value owns one reference to it

    def __init__(
        self, data: Any, _children: Iterable[Value] = _NO_CHILDREN, _op: str = "", label: str = ""
    ) -> None:
        data = _to_float(data)
        if _children is _NO_CHILDREN and not _op:  # the common case: a leaf
            handle = _mg_leaf(data)
            if handle < 0:
                raise error(handle)
        else:  # micrograd keeps a set of children (and set(None) is its TypeError)
            handle = _make_custom(data, set(_children), _op)
        # (Calling __init__ again on a live Value would keep its old node alive; checking for
        # that with hasattr() would triple the cost of every Value(x).)
        self._h = handle
        if label != "":  # (not `if label:`: a falsy non-str label is a TypeError too)
            set_text(handle, lib.MG_TEXT_LABEL, label)

    def __del__(self, _release=lib.mg_release) -> None:  # bound now: module globals die first
        try:
            _release(self._h)
        except AttributeError:  # __init__ failed before the node was made
            pass

    # -- data, grad and the graph, read from the arena ---------------------------------------

    @property
    def data(self) -> float:
        return _mg_data(self._h)

    @data.setter
    def data(self, value: Any) -> None:
        check(lib.mg_set_data(self._h, _to_float(value)))

    @property
    def grad(self) -> float:
        return _mg_grad(self._h)

    @grad.setter
    def grad(self, value: Any) -> None:
        check(lib.mg_set_grad(self._h, _to_float(value)))

    @property
    def _prev(self) -> set[Value]:
        handles = ffi.new("mg_handle[2]")
        count = check(lib.mg_parents(self._h, handles))
        return {_adopt(handles[k]) for k in range(count)}

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
    # their Value in place rather than through _adopt(): a Python call less per operator.

    def __add__(self, other: Value | Number) -> Value:
        if isinstance(other, Value):
            handle = _mg_add(self._h, other._h)
        else:
            handle = _mg_add_const(self._h, other if type(other) is float else _to_float(other))
        if handle < 0:
            raise error(handle)
        out = _new_value(Value)
        out._h = handle
        return out

    def __mul__(self, other: Value | Number) -> Value:
        if isinstance(other, Value):
            handle = _mg_mul(self._h, other._h)
        else:
            handle = _mg_mul_const(self._h, other if type(other) is float else _to_float(other))
        if handle < 0:
            raise error(handle)
        out = _new_value(Value)
        out._h = handle
        return out

    def __pow__(self, other: Number) -> Value:
        if not isinstance(other, (int, float)):
            raise AssertionError("only supporting int/float powers for now")
        return _adopt(lib.mg_pow(self._h, float(other), isinstance(other, int)))

    def relu(self) -> Value:
        return _adopt(lib.mg_relu(self._h))

    def tanh(self) -> Value:
        return _adopt(lib.mg_tanh(self._h))

    def exp(self) -> Value:
        return _adopt(lib.mg_exp(self._h))

    def backward(self) -> None:
        """Sets this Value's grad to 1 and adds d(self)/d(node) into every node it depends on."""
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

    def __neg__(self) -> Value:  # -self
        return self * -1

    def __radd__(self, other: Number) -> Value:  # other + self
        return self + other

    def __sub__(self, other: Value | Number) -> Value:  # self - other
        return self + (-other)

    def __rsub__(self, other: Number) -> Value:  # other - self
        return other + (-self)

    def __rmul__(self, other: Number) -> Value:  # other * self
        return self * other

    def __truediv__(self, other: Value | Number) -> Value:  # self / other
        return self * other**-1

    def __rtruediv__(self, other: Number) -> Value:  # other / self
        return other * self**-1

    # -- identity: two Values are equal when they are the same node ---------------------------

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Value):
            return self._h == other._h  # one handle per node
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._h)

    def __reduce__(self) -> tuple[Any, ...]:
        # The node's history lives in the arena of this process: a copy is a leaf.
        return (_leaf_copy, (self.data, self.grad, self.label))

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"


_new_value = object.__new__


def _adopt(handle: int) -> Value:
    """A Value owning `handle`, a fresh reference from the C core (or a status to raise)."""
    if handle < 0:
        raise error(handle)
    value = _new_value(Value)
    value._h = handle
    return value


def _make_custom(data: float, children: set[Any], op: Any) -> int:
    """A node built by hand, `Value(x, (a, b), 'op')`: micrograd gives it no backward."""
    if not children and not op:  # Value(x, []): a plain leaf after all
        return check(lib.mg_leaf(data))
    for child in children:
        if not isinstance(child, Value):
            raise TypeError(f"children must be Values, not {type(child).__name__}")
    if len(children) > 2:
        raise ValueError("a micrograd_c node has at most two distinct children")
    handles = [child._h for child in children]
    handle = check(lib.mg_custom(data, len(handles), ffi.new("mg_handle[]", handles or [0])))
    if op:
        try:
            set_text(handle, lib.MG_TEXT_OP, op)
        except BaseException:
            lib.mg_release(handle)
            raise
    return handle


def _leaf_copy(data: float, grad: float, label: str) -> Value:
    value = Value(data, label=label)
    value.grad = grad
    return value
