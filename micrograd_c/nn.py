"""micrograd's nn (Module, Neuron, Layer, MLP), with a whole call's nodes made by one C call.

The model is micrograd's: the same constructors, the same `random.uniform(-1, 1)` draws in the
same order (so a seeded model is micrograd's), the same plain lists, parameters() order and
reprs.  A call makes exactly the nodes micrograd's `sum(wi*xi ...)` makes, but in C: an MLP call
is one C call, with no Python operator per weight and no Python object per hidden activation.

What that C call needs (the layer sizes, the ReLU flags, the parameters' handles) is packed into
a _Plan once per model and kept outside the model, in `_plans`.  Nothing has to report a change
to it: every call first checks the model against the plan, reading the model as micrograd's own
__call__ would (each neuron's type, `w`, `b` and `nonlin`, each layer's type and `neurons`, the
`layers`), so a change made by any path, even straight into a `__dict__` or a list, is seen.
A model the C call cannot express runs micrograd's own loop.
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, Callable, Final, Literal, overload

from micrograd_c._core import error, ffi, lib
from micrograd_c.engine import (
    _OWN_ERRORS,
    Value,
    _adopt,
    _new_value,
    _note_stranded,
    _to_float,
)

__all__ = ["Module", "Neuron", "Layer", "MLP"]


class Module:
    def zero_grad(self) -> None:
        handles = [p._h for p in self.parameters()]
        status = lib.mg_zero_grads(ffi.new("mg_handle[]", handles), len(handles))
        if status < 0:
            raise error(status)

    def parameters(self) -> list[Value]:
        return []


class Neuron(Module):
    def __init__(self, nin: int, nonlin: bool = True) -> None:
        self.w = [Value(random.uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0)
        self.nonlin = nonlin

    def __call__(self, x: Iterable[Any]) -> Value:
        out = _call_in_c(self, x, _NEURON)
        if out is None:
            act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
            return act.relu() if self.nonlin else act
        return out

    def parameters(self) -> list[Value]:
        return self.w + [self.b]

    def __repr__(self) -> str:
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"


class Layer(Module):
    def __init__(self, nin: int, nout: int, **kwargs: Any) -> None:
        self.neurons = [Neuron(nin, **kwargs) for _ in range(nout)]

    def __call__(self, x: Iterable[Any]) -> Value | list[Value]:
        out = _call_in_c(self, x, _LAYER)
        if out is None:
            out = [n(x) for n in self.neurons]
            return out[0] if len(out) == 1 else out
        return out

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    def __init__(self, nin: int, nouts: list[int]) -> None:
        sz = [nin] + nouts
        self.layers = [
            Layer(sz[i], sz[i + 1], nonlin=i != len(nouts) - 1) for i in range(len(nouts))
        ]

    def __call__(self, x: Iterable[Any]) -> Value | list[Value]:
        out = _call_in_c(self, x, _MLP)
        if out is None:
            # (After a one-neuron layer x is a Value, which the next layer refuses with
            # micrograd's TypeError; MLP(nin, []) gives back its input.  Hence the ignores.)
            for layer in self.layers:
                x = layer(x)  # type: ignore[assignment]
            return x  # type: ignore[return-value]
        return out

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"


# -- one C call per model call ------------------------------------------------------------------

# Which call runs: a Neuron's, a Layer's or an MLP's.
_NEURON: Final = 0
_LAYER: Final = 1
_MLP: Final = 2
_CALLS = (Neuron.__call__, Layer.__call__, MLP.__call__)
# The attributes micrograd's __call__ of each reads.  A class that defines any of them itself
# (a property, say) may read them otherwise: its models run micrograd's loop.
_ATTRIBUTES = (("w", "b", "nonlin"), ("neurons",), ("layers",))

_mg_mlp = lib.mg_mlp


class _Plan:
    """The arrays mg_mlp reads for one model, and what they were made from.

    `layers` holds, for each layer the call runs, its type and, for each of its neurons (a
    shared one each time it runs), what the neuron's output depends on: its type, a copy of its
    `w` list, its `b` and `nonlin`.  (A Neuron's call has one layer, of no type.)  `calls` holds
    the classes whose __call__ the C call stands in for."""

    __slots__ = (
        "kind",
        "level",
        "layers",
        "calls",
        "nin",
        "nout",
        "nlayers",
        "sizes",
        "nonlin",
        "params",
        "handles",
        "leaves",
        "zeros",
        "spare",
    )

    def __init__(
        self, module: Module, level: int, layers: list[Any], groups: list[list[Any]]
    ) -> None:
        self.kind = type(module)
        self.level = level
        self.layers = [
            (type(layer), [(type(n), list(n.w), n.b, n.nonlin) for n in group])
            for layer, group in zip(layers or [None], groups)
        ]
        calls: dict[type, Callable[..., Any]] = {
            type(n): Neuron.__call__ for group in groups for n in group
        }
        if level == _MLP:
            calls.update((type(layer), Layer.__call__) for layer in layers)
        self.calls = list(calls.items())
        self.nin = len(groups[0][0].w)
        self.nout = len(groups[-1])
        self.nlayers = len(groups)
        self.sizes = ffi.new("int32_t[]", [self.nin] + [len(group) for group in groups])
        self.nonlin = ffi.new("int32_t[]", [bool(group[0].nonlin) for group in groups])
        # (The copies of each w, and each b, keep these handles live.)
        self.params = [p for group in groups for n in group for p in (*n.w, n.b)]
        self.handles = ffi.new("mg_handle[]", [p._h for p in self.params])
        # Inputs that are all numbers, or all Values: C only reads these, so calls share them.
        self.leaves = ffi.new("mg_handle[]", [-1] * self.nin)  # "input k is the number x[k]"
        self.zeros = ffi.new("double[]", self.nin)  # (no numbers among the inputs)
        self.spare: list[Any] = []  # output buffers no call is using (_call_in_c)


def _reads_plainly(cls: type, level: int) -> bool:
    """Whether micrograd's code reads the attributes its call uses (`w`, `b`, `nonlin`;
    `neurons`; `layers`) from an instance's __dict__, so the plan records what it would read."""
    return (
        cls.__getattribute__ is object.__getattribute__  # type: ignore[comparison-overlap]
        and not any(hasattr(cls, name) for name in _ATTRIBUTES[level])
    )


def _runs_own_call(cls: type, level: int) -> bool:
    """Whether calling an instance of cls (a layer inside an MLP, a neuron inside a layer) runs
    our __call__ of that level, plainly."""
    return cls.__call__ is _CALLS[level] and _reads_plainly(cls, level)


def _plan(module: Module, level: int) -> _Plan | None:
    """A plan for calling module in C, or None where micrograd's loop must run."""
    if not _reads_plainly(type(module), level):
        return None
    # The layers and their neurons: whatever objects the model holds now, checked below.
    layers: list[Any]
    groups: list[list[Any]]
    if level == _NEURON:
        layers, groups = [], [[module]]
    elif level == _LAYER:
        layers, groups = [module], [module.neurons]  # type: ignore[attr-defined]
    else:
        layers = module.layers  # type: ignore[attr-defined]
        if type(layers) is not list or not layers:  # MLP(2, []) hands back its input
            return None
        if not all(_runs_own_call(type(layer), _LAYER) for layer in layers):
            return None
        groups = [layer.neurons for layer in layers]
    width = None  # each neuron's weights: the previous layer's width (the first's, at first)
    for index, group in enumerate(groups):
        if type(group) is not list or not group:
            return None
        if index < len(groups) - 1 and len(group) < 2:  # micrograd hands on a Value, not a list
            return None
        nonlin = bool(group[0].nonlin)
        for n in group:
            if not _runs_own_call(type(n), _NEURON) or type(n.w) is not list:
                return None
            # mg_mlp gives every neuron of a layer as many weights as the layer has inputs.
            if len(n.w) != (len(group[0].w) if width is None else width):
                return None
            if bool(n.nonlin) != nonlin or type(n.b) is not Value:
                return None
            if not all(type(p) is Value for p in n.w):
                return None
        width = len(group)
    return _Plan(module, level, layers, groups)


def _fits(plan: _Plan, module: Module) -> bool:
    """Whether module still is the model the plan was made from, read as micrograd's calls
    read it: whatever path changed it (an attribute, a __dict__, a list, a class), it shows."""
    if type(module) is not plan.kind:
        return False
    for cls, call in plan.calls:
        if cls.__call__ is not call:
            return False
    if plan.level == _NEURON:
        _, w, b, nonlin = plan.layers[0][1][0]
        return module.w == w and module.b is b and module.nonlin is nonlin  # type: ignore
    if plan.level == _LAYER:
        layers: Any = (module,)
    else:
        layers = module.layers  # type: ignore[attr-defined]
        if type(layers) is not list or len(layers) != len(plan.layers):
            return False
    for layer, (kind, parts) in zip(layers, plan.layers):
        group = layer.neurons
        if type(layer) is not kind or type(group) is not list or len(group) != len(parts):
            return False
        for n, (kind, w, b, nonlin) in zip(group, parts):
            if type(n) is not kind or n.w != w or n.b is not b or n.nonlin is not nonlin:
                return False
    return True


# Each model's plan (None: micrograd's loop) by the model's id, which no other object gets
# while the model lives; the entry goes with the model.  Kept out of the model, so copying,
# pickling or updating its __dict__ sees micrograd's attributes alone.
_plans: dict[int, _Plan | None] = {}


@overload
def _call_in_c(module: Module, x: Any, level: Literal[0]) -> Value | None: ...
@overload
def _call_in_c(module: Module, x: Any, level: int) -> Value | list[Value] | None: ...
def _call_in_c(module: Module, x: Any, level: int) -> Value | list[Value] | None:
    """The call's output made by one mg_mlp call (a Value, or a list of them as a Layer
    gives), or None where micrograd's loop must run."""
    key = id(module)
    plan = _plans.get(key)
    try:
        fits = plan is not None and _fits(plan, module)
    except Exception:  # (say, a w made a numpy array: == gives no bool) _plan sees to it
        fits = False
    if not fits:
        if key not in _plans:
            weakref.finalize(module, _plans.pop, key, None).atexit = False
        plan = _plans[key] = _plan(module, level)
    if plan is None:  # (only a plan made just now can be None: one that fits is not)
        return None
    nin = plan.nin
    if type(x) is not list and type(x) is not tuple:
        if iter(x) is x:  # an iterator: micrograd's first neuron would consume it, so must we
            return None
        x = list(x)  # a container (a numpy row, a range): listing it leaves it as it was
    if len(x) < nin:  # zip() stops early: fewer terms than weights
        return None
    nout = plan.nout
    # A buffer for the output handles, this call's alone: a pop and an append are cheaper than
    # a new cffi array.  (One lost to an exception is simply not given back.)
    spare = plan.spare
    out = spare.pop() if spare else ffi.new("mg_handle[]", nout)
    try:  # (from the C call until every output has its Value: see engine._stranded)
        status: int | None = None  # (None: inputs the two fast paths below do not take)
        if nin and type(x[0]) is Value:  # Values, as the notebook gives them (numbers may follow)
            handles = [v._h if type(v) is Value else -1 for v in x]
            if -1 not in handles:
                status = _mg_mlp(
                    plan.nlayers, plan.sizes, plan.nonlin, plan.handles, handles, plan.zeros, out
                )
        else:
            try:  # numbers alone: cffi reads them as doubles
                status = _mg_mlp(
                    plan.nlayers, plan.sizes, plan.nonlin, plan.handles, plan.leaves, x, out
                )
            except (TypeError, OverflowError):  # a Value, or a number only _to_float reads
                status = None
        if status is None:  # Values and numbers mixed, or numbers only _to_float reads
            inputs = _inputs(x, nin)
            if inputs is None:
                return None
            status = _mg_mlp(plan.nlayers, plan.sizes, plan.nonlin, plan.handles, *inputs, out)
        if status < 0:
            raise error(status)
        if nout == 1:
            result: Value | list[Value] = _new_value(Value)
            result._h = out[0]  # type: ignore[union-attr]
        else:
            result = list(map(_adopt, out))
    except _OWN_ERRORS:
        raise
    except BaseException:  # an interrupt: handles in `out` may be owned by no Value
        _note_stranded()
        raise
    spare.append(out)
    return result


def _inputs(x: Sequence[Any], nin: int) -> tuple[list[float], list[float]] | None:
    """mg_mlp's inputs and constants for the first nin of x, or None if one is a Value
    subclass (its own operators may differ, so micrograd's loop must run)."""
    handles: list[float]
    handles, constants = [-1] * nin, [0.0] * nin
    for k in range(nin):
        xk = x[k]
        if type(xk) is Value:
            handles[k] = xk._h
        elif isinstance(xk, Value):
            return None
        else:
            constants[k] = _to_float(xk)
    return handles, constants
