"""micrograd's nn (Module, Neuron, Layer, MLP), with a whole call's nodes made by one C call.

The model is micrograd's: the same constructors, the same `random.uniform(-1, 1)` draws in the
same order (so a seeded model is micrograd's), the same parameters() order and reprs.  A call
makes exactly the nodes micrograd's `sum(wi*xi ...)` makes, but in C: an MLP call is one C call,
with no Python operator per weight and no Python object per hidden activation.

The handles of a model's parameters are packed into a C array once and reused while the model
is unchanged.  "Unchanged" is tracked, not re-checked per call: assigning an attribute of a
Module, or changing one of its lists (`Neuron.w`, `Layer.neurons`, `MLP.layers`), bumps a
version that every packed array is checked against.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterable, Sequence

from micrograd_c._core import check, ffi, lib
from micrograd_c.engine import _OWN_ERRORS, Value, _adopt, _note_stranded, _to_float

__all__ = ["Module", "Neuron", "Layer", "MLP"]

_version = [0]  # bumped by every change to a Module's attributes or tracked lists


def _changed() -> None:
    _version[0] += 1


class _TrackedList(list):
    """A list (Neuron.w, Layer.neurons, MLP.layers) that tells the packed arrays it changed."""

    __slots__ = ()


def _tracking(method: Callable[..., Any]) -> Callable[..., Any]:
    def changing(self: list, *args: Any, **kwargs: Any) -> Any:
        _changed()
        return method(self, *args, **kwargs)

    changing.__name__ = method.__name__
    return changing


for _name in ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend",
              "insert", "pop", "remove", "clear", "sort", "reverse"):
    setattr(_TrackedList, _name, _tracking(getattr(list, _name)))


class Module:
    def zero_grad(self) -> None:
        handles = [p._h for p in self.parameters()]
        check(lib.mg_zero_grads(ffi.new("mg_handle[]", handles), len(handles)))

    def parameters(self) -> list[Value]:
        return []

    def __setattr__(self, name: str, value: Any) -> None:
        _changed()
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        _changed()
        object.__delattr__(self, name)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_packed", None)  # C handles mean nothing in another process
        return state


class Neuron(Module):
    def __init__(self, nin: int, nonlin: bool = True) -> None:
        self.w = _TrackedList(Value(random.uniform(-1, 1)) for _ in range(nin))
        self.b = Value(0)
        self.nonlin = nonlin

    def __call__(self, x: Iterable[Any]) -> Value:
        out = _call_packed(self, x)
        if out is None:
            act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
            return act.relu() if self.nonlin else act
        return out[0]

    def parameters(self) -> list[Value]:
        return self.w + [self.b]

    def __repr__(self) -> str:
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"


class Layer(Module):
    def __init__(self, nin: int, nout: int, **kwargs: Any) -> None:
        self.neurons = _TrackedList(Neuron(nin, **kwargs) for _ in range(nout))

    def __call__(self, x: Iterable[Any]) -> Value | list[Value]:
        out = _call_packed(self, x)
        if out is None:
            out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    def __init__(self, nin: int, nouts: list[int]) -> None:
        sz = [nin] + nouts
        self.layers = _TrackedList(
            Layer(sz[i], sz[i + 1], nonlin=i != len(nouts) - 1) for i in range(len(nouts))
        )

    def __call__(self, x: Iterable[Any]) -> Value | list[Value]:
        out = _call_packed(self, x)
        if out is None:
            for layer in self.layers:
                x = layer(x)
            return x
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"


# -- packing a model's parameters for mg_mlp ----------------------------------------------------


class _Packed:
    """The arrays mg_mlp reads for one Module, valid while _version stays at `version`."""

    __slots__ = ("version", "nlayers", "sizes", "nonlin", "params", "handles")

    def __init__(self, layers: Sequence[Sequence[Neuron]]) -> None:
        self.version = _version[0]
        self.nlayers = len(layers)
        self.sizes = ffi.new("int32_t[]", [len(layers[0][0].w)] + [len(n) for n in layers])
        self.nonlin = ffi.new("int32_t[]", [bool(n[0].nonlin) for n in layers])
        self.params = [p for neurons in layers for n in neurons for p in (*n.w, n.b)]
        self.handles = ffi.new("mg_handle[]", [p._h for p in self.params])  # params keep them live


def _layers_of(module: Module) -> list[Sequence[Neuron]] | None:
    """The neurons, layer by layer, that mg_mlp runs for this module's call; None when the
    model was changed by hand so that micrograd's own loop must run."""
    if isinstance(module, Neuron):
        layers: list[Sequence[Any]] = [[module]]
    elif isinstance(module, Layer):
        layers = [module.neurons]
    else:
        if type(module.layers) is not _TrackedList:
            return None
        layers = []
        for layer in module.layers:
            if type(layer).__call__ is not Layer.__call__:
                return None
            layers.append(layer.neurons)
    for l, neurons in enumerate(layers):
        if not neurons or (type(neurons) is not _TrackedList and not isinstance(module, Neuron)):
            return None  # (a plain list could change without telling the packed arrays)
        if l < len(layers) - 1 and len(neurons) < 2:  # micrograd hands on a Value, not a list
            return None
        if l > 0 and len(neurons[0].w) != len(layers[l - 1]):
            return None
        for n in neurons:
            if type(n).__call__ is not Neuron.__call__ or type(n.w) is not _TrackedList:
                return None
            if len(n.w) != len(neurons[0].w) or bool(n.nonlin) != bool(neurons[0].nonlin):
                return None
            if not isinstance(n.b, Value) or not all(isinstance(w, Value) for w in n.w):
                return None
    return layers


def _call_packed(module: Module, x: Iterable[Any]) -> list[Value] | None:
    """The module's outputs made by one mg_mlp call, or None if the caller must run
    micrograd's loop (a model changed by hand, or fewer inputs than weights)."""
    packed = module.__dict__.get("_packed")
    if packed is None or packed.version != _version[0]:
        layers = _layers_of(module)
        if layers is None:
            return None
        packed = _Packed(layers)
        module.__dict__["_packed"] = packed  # not through __setattr__: that bumps _version
    if not isinstance(x, (list, tuple)):
        if iter(x) is x:  # an iterator: micrograd's first neuron would consume it, so must we
            return None
        x = list(x)  # a container (a numpy row, a range): listing it leaves it as it was
    nin = packed.sizes[0]
    if len(x) < nin:  # zip() stops early: fewer terms than weights
        return None
    inputs = ffi.new("mg_handle[]", nin)
    constants = ffi.new("double[]", nin)
    for k in range(nin):
        xk = x[k]
        if isinstance(xk, Value):
            inputs[k] = xk._h
        else:
            inputs[k] = -1
            constants[k] = _to_float(xk)
    nout = packed.sizes[packed.nlayers]
    out = ffi.new("mg_handle[]", nout)
    try:
        check(lib.mg_mlp(packed.nlayers, packed.sizes, packed.nonlin, packed.handles, inputs,
                         constants, out))
        return [_adopt(out[j]) for j in range(nout)]
    except _OWN_ERRORS:
        raise
    except BaseException:  # an interrupt: handles in `out` may be owned by no Value
        _note_stranded()
        raise
