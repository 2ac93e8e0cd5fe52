"""micrograd_c.nn against micrograd.nn: same weights, reprs, outputs, graphs and gradients.

Every test builds the same model twice, once per engine, after the same `random.seed`, does the
same thing to both and compares.  micrograd's `Value` holds Python numbers and its graph is
freed only by the cyclic GC, so the tests keep models small.
"""

from __future__ import annotations

import copy
import gc
import math
import pickle
import random
from collections import Counter
from typing import Any, Callable

import micrograd.engine
import micrograd.nn
import numpy as np
import pytest

import micrograd_c.engine
import micrograd_c.nn
from micrograd_c.demo import train

C, M = micrograd_c.nn, micrograd.nn  # the engine under test and the reference
CV, MV = micrograd_c.engine.Value, micrograd.engine.Value
ENGINES = [(C, CV), (M, MV)]


def twins(build: Callable[[Any], Any], seed: int = 1) -> tuple[Any, Any]:
    """build(nn) for micrograd_c and for micrograd, each after random.seed(seed)."""
    random.seed(seed)
    ours = build(C)
    random.seed(seed)
    theirs = build(M)
    return ours, theirs


def datas(out: Any) -> list[float]:
    """The data of a call's output: one Value or a list of them."""
    return [v.data for v in out] if isinstance(out, list) else [out.data]


def graph(out: Any) -> Counter:
    """Every node reachable from out through _prev, each as (op, data, sorted child data).

    Nodes are told apart by identity (micrograd_c Values are equal when they name one node), so
    the multiset also counts how many distinct nodes the graph has: a shared leaf counts once.
    """
    roots = out if isinstance(out, list) else [out]
    seen, stack = set(roots), list(roots)
    while stack:
        for child in stack.pop()._prev:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return Counter((v._op, v.data, tuple(sorted(c.data for c in v._prev))) for v in seen)


def assert_close(ours: list[float], theirs: list[float], rel: float = 1e-12) -> None:
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a == b or abs(a - b) <= rel * max(abs(a), abs(b)), (a, b)


def assert_same_call(ours: Any, theirs: Any, x_ours: list, x_theirs: list) -> None:
    """Calling both modules gives equal outputs and the same graph node for node."""
    out_ours, out_theirs = ours(x_ours), theirs(x_theirs)
    assert type(out_ours) is (list if isinstance(out_theirs, list) else CV)
    assert datas(out_ours) == datas(out_theirs)
    assert graph(out_ours) == graph(out_theirs)


SHAPES = {
    "Neuron(3)": lambda nn: nn.Neuron(3),
    "Neuron(1, linear)": lambda nn: nn.Neuron(1, nonlin=False),
    "Layer(2, 3)": lambda nn: nn.Layer(2, 3),
    "Layer(4, 1, linear)": lambda nn: nn.Layer(4, 1, nonlin=False),
    "MLP(2, [16, 16, 1])": lambda nn: nn.MLP(2, [16, 16, 1]),
    "MLP(3, [4, 4, 1])": lambda nn: nn.MLP(3, [4, 4, 1]),
    "MLP(1, [1])": lambda nn: nn.MLP(1, [1]),
    "MLP(5, [2, 3])": lambda nn: nn.MLP(5, [2, 3]),
}


@pytest.mark.parametrize("build", SHAPES.values(), ids=SHAPES.keys())
def test_same_seed_gives_micrograds_parameters_and_repr(build: Callable[[Any], Any]) -> None:
    random.seed(7)
    ours = build(C)
    after_ours = random.random()  # the same number of draws, too
    random.seed(7)
    theirs = build(M)
    after_theirs = random.random()
    assert [p.data for p in ours.parameters()] == [p.data for p in theirs.parameters()]
    assert after_ours == after_theirs
    assert repr(ours) == repr(theirs)
    assert all(type(p) is CV for p in ours.parameters())


def test_reprs_spelled_out() -> None:
    assert repr(C.Neuron(2)) == "ReLUNeuron(2)"
    assert repr(C.Neuron(3, nonlin=False)) == "LinearNeuron(3)"
    assert repr(C.Layer(2, 2)) == "Layer of [ReLUNeuron(2), ReLUNeuron(2)]"
    assert repr(C.MLP(2, [2, 1])) == (
        "MLP of [Layer of [ReLUNeuron(2), ReLUNeuron(2)], Layer of [LinearNeuron(2)]]"
    )


def test_parameters_order_and_count() -> None:
    mlp = C.MLP(3, [4, 2, 1])
    expected = [p for layer in mlp.layers for n in layer.neurons for p in (*n.w, n.b)]
    params = mlp.parameters()
    assert len(params) == (3 + 1) * 4 + (4 + 1) * 2 + (2 + 1) * 1
    assert len(params) == len(expected) and all(p is q for p, q in zip(params, expected))
    assert all(p is q for p, q in zip(mlp.layers[1].parameters(), expected[16:26]))
    neuron = mlp.layers[0].neurons[2]
    assert neuron.parameters() == [*neuron.w, neuron.b] and neuron.b.data == 0


def test_layer_with_one_output_returns_a_value_else_a_list() -> None:
    x = [0.5, -0.25]
    assert type(C.Layer(2, 1)(x)) is CV
    assert type(C.MLP(2, [3, 1])(x)) is CV
    for out in (C.Layer(2, 3)(x), C.MLP(2, [3, 2])(x)):
        assert type(out) is list and all(type(v) is CV for v in out)
    assert len(C.Layer(2, 3)(x)) == 3


INPUTS = {
    "float": lambda V: [0.5, -1.5, 2.25],
    "int": lambda V: [1, -2, 3],
    "numpy": lambda V: [np.float64(0.5), np.int64(-2), np.float64(2.25)],
    "Value": lambda V: [V(0.5), V(-1.5), V(2.25)],
}
MODULES = {
    "Neuron": lambda nn: nn.Neuron(3),
    "Layer": lambda nn: nn.Layer(3, 4),
    "MLP": lambda nn: nn.MLP(3, [4, 3, 1]),
    "MLP, 2 outputs": lambda nn: nn.MLP(3, [4, 2]),
}


@pytest.mark.parametrize("make_x", INPUTS.values(), ids=INPUTS.keys())
@pytest.mark.parametrize("build", MODULES.values(), ids=MODULES.keys())
def test_call_output_graph_and_gradients_match(build: Callable, make_x: Callable) -> None:
    ours, theirs = twins(build, seed=4)
    x_ours, x_theirs = make_x(CV), make_x(MV)
    assert_same_call(ours, theirs, x_ours, x_theirs)

    out_ours, out_theirs = ours(x_ours), theirs(x_theirs)
    if isinstance(out_ours, list):  # backward from one scalar that uses every output
        out_ours, out_theirs = sum(out_ours), sum(out_theirs)
    assert out_ours.data == out_theirs.data
    out_ours.backward()
    out_theirs.backward()
    grads_ours = [p.grad for p in ours.parameters()]
    assert sum(g != 0 for g in grads_ours) >= len(grads_ours) // 3, "mostly dead: a weak test"
    assert_close(grads_ours, [p.grad for p in theirs.parameters()])
    if make_x is INPUTS["Value"]:
        assert_close([v.grad for v in x_ours], [v.grad for v in x_theirs])


def test_training_steps_of_the_demo_loop_match_micrograd() -> None:
    rng = random.Random(11)  # XOR-like points: the loop's data need not be the moons here
    X = [[rng.uniform(-2, 2), rng.uniform(-2, 2)] for _ in range(30)]
    y = [1 if a * b > 0 else -1 for a, b in X]
    ours = train(CV, C.MLP, X, y, steps=10, seed=5, progress=False)
    gc.disable()  # micrograd's graphs are all cycles: collect once, not mid-run (same numbers)
    try:
        theirs = train(MV, M.MLP, X, y, steps=10, seed=5, progress=False)
    finally:
        gc.enable()
        gc.collect()
    assert_close(ours.losses, theirs.losses, rel=1e-9)
    assert ours.accuracies == theirs.accuracies
    assert len(set(ours.losses)) == 10  # the parameters really moved every step
    assert_close(
        [p.data for p in ours.model.parameters()],
        [p.data for p in theirs.model.parameters()],
        rel=1e-9,
    )


def test_zero_grad_zeroes_every_parameter_grad_and_nothing_else() -> None:
    mlp = C.MLP(2, [3, 3, 1])
    x = [CV(0.5), CV(-1.0)]
    mlp(x).backward()
    assert sum(p.grad != 0 for p in mlp.parameters()) > 5
    x_grads = [v.grad for v in x]
    mlp.zero_grad()
    assert all(p.grad == 0 for p in mlp.parameters())
    assert [v.grad for v in x] == x_grads and any(x_grads)  # inputs are not parameters
    neuron = C.Neuron(2)
    neuron(x).backward()
    neuron.zero_grad()
    assert [p.grad for p in neuron.parameters()] == [0, 0, 0]


# -- a model changed by hand is used as changed, as micrograd uses it -------------------------

CHANGES: list[tuple[str, Callable[[Any, Any, Any], None]]] = [
    ("w[0] = Value(5.0)", lambda nn, V, m: m.layers[0].neurons[0].w.__setitem__(0, V(5.0))),
    ("b = Value(1.0)", lambda nn, V, m: setattr(m.layers[0].neurons[1], "b", V(1.0))),
    ("w[1].data = -3.0", lambda nn, V, m: setattr(m.layers[1].neurons[0].w[1], "data", -3.0)),
    ("neurons.append", lambda nn, V, m: m.layers[2].neurons.append(nn.Neuron(3, nonlin=False))),
    ("layers[1] = Layer", lambda nn, V, m: m.layers.__setitem__(1, nn.Layer(3, 4))),  # zip cuts
    ("nonlin = False", lambda nn, V, m: setattr(m.layers[0].neurons[2], "nonlin", False)),
    (
        "w = plain list",
        lambda nn, V, m: setattr(m.layers[1].neurons[1], "w", [V(0.5), V(-0.25), V(2.0)]),
    ),
    ("plain w[2] = Value", lambda nn, V, m: m.layers[1].neurons[1].w.__setitem__(2, V(-4.0))),
    ("plain w.pop()", lambda nn, V, m: m.layers[1].neurons[1].w.pop()),
    (
        "neurons = plain list",
        lambda nn, V, m: setattr(m.layers[2], "neurons", [nn.Neuron(4, nonlin=False)]),
    ),
    ("neurons.reverse()", lambda nn, V, m: m.layers[1].neurons.reverse()),
    ("layers.pop()", lambda nn, V, m: m.layers.pop()),
    ("w.insert", lambda nn, V, m: m.layers[0].neurons[0].w.insert(0, V(0.75))),
]


def test_changes_by_hand_are_honoured_as_in_micrograd() -> None:
    ours, theirs = twins(lambda nn: nn.MLP(2, [3, 3, 1]), seed=4)
    x = [0.8, -0.6]
    before = datas(theirs(x))
    for k, (what, change) in enumerate(CHANGES):
        for (nn, V), model in zip(ENGINES, (ours, theirs)):
            random.seed(100 + k)  # changes that make a Neuron draw the same weights
            change(nn, V, model)
        after = datas(theirs(x))
        assert after != before, f"{what}: the change must show in micrograd's output"
        assert datas(ours(x)) == after, what
        assert_same_call(ours, theirs, x, x)
        before = after


@pytest.mark.parametrize("nin", [1, 2, 4, 6], ids=lambda n: f"{n} inputs")
def test_fewer_or_more_inputs_than_weights_zip_as_micrograd(nin: int) -> None:
    for build in (
        lambda nn: nn.Neuron(4),
        lambda nn: nn.Layer(4, 3),
        lambda nn: nn.MLP(4, [3, 2, 1]),
    ):
        ours, theirs = twins(build, seed=4)
        x = [0.3 * k - 0.7 for k in range(nin)]
        assert_same_call(ours, theirs, x, x)


def test_hidden_layer_of_width_one_fails_as_in_micrograd() -> None:
    ours, theirs = twins(lambda nn: nn.MLP(2, [1, 3]))
    with pytest.raises(TypeError) as theirs_error:
        theirs([0.5, 0.5])
    with pytest.raises(theirs_error.type):
        ours([0.5, 0.5])
    # width 1 at the output is fine: the caller gets the Value
    ours, theirs = twins(lambda nn: nn.MLP(2, [3, 1]))
    assert_same_call(ours, theirs, [0.5, 0.5], [0.5, 0.5])


def user_module(nn: Any, V: type) -> Any:
    """A user's Module written the micrograd way: its own __init__, __call__, parameters()."""

    class Net(nn.Module):
        def __init__(self) -> None:
            self.body = nn.MLP(2, [4, 4])
            self.head = nn.Neuron(4, nonlin=False)
            self.scale = V(1.5)

        def __call__(self, x: list) -> Any:
            return self.head(self.body(x)) * self.scale

        def parameters(self) -> list:
            return self.body.parameters() + self.head.parameters() + [self.scale]

    return Net()


def test_user_module_subclass_works_with_zero_grad() -> None:
    ours, theirs = twins(lambda nn: user_module(nn, CV if nn is C else MV), seed=6)
    assert [p.data for p in ours.parameters()] == [p.data for p in theirs.parameters()]
    x = [0.9, -0.4]
    assert_same_call(ours, theirs, x, x)
    out_ours, out_theirs = ours(x), theirs(x)
    out_ours.backward()
    out_theirs.backward()
    assert ours.scale.grad == out_ours.data / 1.5 != 0
    assert_close([p.grad for p in ours.parameters()], [p.grad for p in theirs.parameters()])
    ours.zero_grad()
    assert all(p.grad == 0 for p in ours.parameters())


def micrograd_tanh(v: Any) -> Any:
    """tanh on a micrograd Value, as Karpathy's lecture adds it (micrograd 0.1.0 has none)."""
    t = math.tanh(v.data)
    out = MV(t, (v,), "tanh")

    def _backward() -> None:
        v.grad += (1 - t**2) * out.grad

    out._backward = _backward
    return out


def tanh_neuron(nn: Any) -> type:
    """A Neuron subclass with its own __call__: a tanh activation."""
    tanh = (lambda v: v.tanh()) if nn is C else micrograd_tanh

    class TanhNeuron(nn.Neuron):
        def __call__(self, x: list) -> Any:
            act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
            return tanh(act)

    return TanhNeuron


def test_neuron_subclass_with_its_own_call_is_honoured_in_a_layer() -> None:
    def build(nn: Any) -> Any:
        mlp = nn.MLP(2, [3, 3, 1])
        mlp.layers[1].neurons[1] = tanh_neuron(nn)(3)  # draws its weights: same seed, same w
        return mlp

    ours, theirs = twins(build, seed=4)
    x = [0.7, 0.2]
    assert_same_call(ours, theirs, x, x)
    assert "tanh" in {op for op, _, _ in graph(ours(x))}
    out_ours, out_theirs = ours(x), theirs(x)
    out_ours.backward()
    out_theirs.backward()
    assert_close([p.grad for p in ours.parameters()], [p.grad for p in theirs.parameters()])
    hidden = ours.layers[0](x)
    assert ours.layers[1](hidden)[1].data == math.tanh(
        sum(
            (w.data * h.data for w, h in zip(ours.layers[1].neurons[1].w, hidden)),
            ours.layers[1].neurons[1].b.data,
        )
    )


@pytest.mark.parametrize(
    "clone", [lambda m: pickle.loads(pickle.dumps(m)), copy.deepcopy], ids=["pickle", "deepcopy"]
)
def test_pickle_and_deepcopy_round_trip(clone: Callable[[Any], Any]) -> None:
    mlp = C.MLP(2, [4, 4, 1])
    x = [0.25, -0.75]
    mlp(x).backward()  # grads are part of the state too
    twin = clone(mlp)
    assert repr(twin) == repr(mlp)
    assert [p.data for p in twin.parameters()] == [p.data for p in mlp.parameters()]
    assert [p.grad for p in twin.parameters()] == [p.grad for p in mlp.parameters()]
    assert twin(x).data == mlp(x).data
    assert graph(twin(x)) == graph(mlp(x))
    # the copy is a model of its own: changing it leaves the original alone
    original = mlp(x).data
    for p in twin.parameters():
        p.data += 0.5
    assert mlp(x).data == original != twin(x).data
    assert not set(twin.parameters()) & set(mlp.parameters())


def test_a_plain_neurons_list_changed_in_place_is_honoured() -> None:
    # A list a user made (no list of the model's own making) changed in place, by any method.
    for build in (lambda nn: nn.Layer(2, 3), lambda nn: nn.MLP(2, [3, 2])):
        ours, theirs = twins(build, seed=5)
        x = [0.4, -0.9]
        for (nn, _), model in zip(ENGINES, (ours, theirs)):
            layer = model if isinstance(model, nn.Layer) else model.layers[0]
            layer.neurons = list(layer.neurons)
        assert_same_call(ours, theirs, x, x)
        for (nn, _), model in zip(ENGINES, (ours, theirs)):
            layer = model if isinstance(model, nn.Layer) else model.layers[0]
            layer.neurons.reverse()  # no Module attribute changes: only the list knows
        assert_same_call(ours, theirs, x, x)
        for (nn, _), model in zip(ENGINES, (ours, theirs)):
            layer = model if isinstance(model, nn.Layer) else model.layers[0]
            del layer.neurons[0]
        assert_same_call(ours, theirs, x, x)


@pytest.mark.parametrize(
    "make_input",
    [iter, lambda x: (v for v in x), np.array, tuple],
    ids=["iterator", "generator", "numpy row", "tuple"],
)
def test_inputs_of_any_iterable_kind_act_as_in_micrograd(make_input: Callable) -> None:
    # An iterator is consumed by micrograd's first neuron (the others see nothing): so here too.
    for build in (lambda nn: nn.Neuron(2), lambda nn: nn.Layer(2, 3), lambda nn: nn.MLP(2, [3, 1])):
        ours, theirs = twins(build, seed=6)
        x = [0.25, -1.5]
        assert datas(ours(make_input(x))) == datas(theirs(make_input(x)))
