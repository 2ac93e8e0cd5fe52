"""A model changed by any path is called as changed, exactly as micrograd calls it.

micrograd_c runs a model's call as one C call from arrays packed once per model (a plan, kept
outside the model).  Each test here builds the same model in both engines, calls both once (so
the plan exists), changes both the same way and compares the next calls.  Each change is
checked to change micrograd's output, so a stale plan cannot pass.
"""

from __future__ import annotations

import copy
import gc
import pickle
import random
from typing import Any, Callable

import micrograd.engine
import micrograd.nn
import numpy as np
import pytest

import micrograd_c.engine
import micrograd_c.nn

C, M = micrograd_c.nn, micrograd.nn
CV, MV = micrograd_c.engine.Value, micrograd.engine.Value
ENGINES = ((C, CV), (M, MV))
X = [0.8, -0.6, 0.3, 1.1]  # one more input than the model takes: zip() drops it, until a w grows


def twins(build: Callable[[Any, type], Any], seed: int = 36) -> tuple[Any, Any]:
    models = []
    for nn, V in ENGINES:
        random.seed(seed)
        models.append(build(nn, V))
    return models[0], models[1]


def outcome(model: Any, x: Any) -> Any:
    """What a call gives: its data (one Value, a list, or an input list handed back), or the
    type of its error."""
    try:
        out = model(x)
    except Exception as e:  # compared with micrograd's, which is the point
        return type(e)
    if isinstance(out, list):
        return [v.data if isinstance(v, (CV, MV)) else v for v in out]
    return out.data


def assert_change_is_seen(
    ours: Any, theirs: Any, change: Callable[[Any, type, Any], Any], seed: int = 100, x: Any = X
) -> None:
    assert outcome(ours, x) == outcome(theirs, x)  # the plan is made and used
    assert outcome(ours, x) == outcome(theirs, x)
    before = outcome(theirs, x)
    for (nn, V), model in zip(ENGINES, (ours, theirs)):
        random.seed(seed)  # a change that makes a Neuron draws the same weights in both
        change(nn, V, model)
    after = outcome(theirs, x)
    assert after != before, "the change must show in micrograd's output"
    assert outcome(ours, x) == after
    assert outcome(ours, x) == after  # and again, from a new plan
    for model in (ours, theirs):  # the new plan reads the new weights
        for p in model.parameters() if not isinstance(after, type) else []:
            p.data = p.data * 1.5 + 0.25
    assert outcome(ours, x) == outcome(theirs, x)


def mlp(nn: Any, V: type) -> Any:
    return nn.MLP(3, [4, 4, 2])


# -- every mutator of the three lists, against micrograd ----------------------------------------


def first_w(m: Any) -> list:
    return m.layers[0].neurons[1].w


def hidden_neurons(m: Any) -> list:
    return m.layers[1].neurons


def output_neurons(m: Any) -> list:
    return m.layers[2].neurons


def by_data(v: Any) -> float:
    return v.data


WEIGHT_CHANGES: dict[str, Callable[[Any, type, Any], Any]] = {
    "w[1] = Value": lambda nn, V, m: first_w(m).__setitem__(1, V(2.5)),
    "w[0:2] = [Value]": lambda nn, V, m: first_w(m).__setitem__(slice(0, 2), [V(-1.5)]),
    "del w[0]": lambda nn, V, m: first_w(m).__delitem__(0),
    "w += [Value]": lambda nn, V, m: first_w(m).__iadd__([V(0.5)]),
    "w *= 2": lambda nn, V, m: first_w(m).__imul__(2),
    "w.append": lambda nn, V, m: first_w(m).append(V(0.5)),
    "w.extend": lambda nn, V, m: first_w(m).extend([V(0.5), V(-2.0)]),
    "w.insert": lambda nn, V, m: first_w(m).insert(0, V(0.75)),
    "w.pop()": lambda nn, V, m: first_w(m).pop(),
    "w.remove": lambda nn, V, m: first_w(m).remove(first_w(m)[1]),
    "w.clear()": lambda nn, V, m: first_w(m).clear(),
    "w.sort": lambda nn, V, m: first_w(m).sort(key=by_data),
    "w.reverse()": lambda nn, V, m: first_w(m).reverse(),
    "list.__setitem__(w)": lambda nn, V, m: list.__setitem__(first_w(m), 2, V(3.0)),
    "hidden w[3] = Value": lambda nn, V, m: m.layers[1].neurons[0].w.__setitem__(3, V(-2.0)),
    "hidden w.pop()": lambda nn, V, m: m.layers[1].neurons[2].w.pop(),
    "output w.reverse()": lambda nn, V, m: m.layers[2].neurons[0].w.reverse(),
}

NEURON_CHANGES: dict[str, Callable[[Any, type, Any], Any]] = {
    "neurons[1] = Neuron": lambda nn, V, m: hidden_neurons(m).__setitem__(1, nn.Neuron(4)),
    "del neurons[0]": lambda nn, V, m: hidden_neurons(m).__delitem__(0),
    # (more hidden neurons than the next layer has weights would change nothing: zip() cuts)
    "neurons += [Neuron]": lambda nn, V, m: output_neurons(m).__iadd__([nn.Neuron(4)]),
    "neurons *= 2": lambda nn, V, m: output_neurons(m).__imul__(2),
    "neurons.append": lambda nn, V, m: output_neurons(m).append(nn.Neuron(4)),
    "neurons.extend": lambda nn, V, m: output_neurons(m).extend([nn.Neuron(4), nn.Neuron(4)]),
    "neurons.insert": lambda nn, V, m: hidden_neurons(m).insert(0, nn.Neuron(4)),
    "neurons.pop()": lambda nn, V, m: hidden_neurons(m).pop(),
    "neurons.remove": lambda nn, V, m: hidden_neurons(m).remove(hidden_neurons(m)[2]),
    "neurons.clear()": lambda nn, V, m: hidden_neurons(m).clear(),
    "neurons.sort": lambda nn, V, m: hidden_neurons(m).sort(key=lambda n: n.w[0].data),
    "neurons.reverse()": lambda nn, V, m: hidden_neurons(m).reverse(),
    "output neurons.pop()": lambda nn, V, m: m.layers[2].neurons.pop(),
}

LAYER_CHANGES: dict[str, Callable[[Any, type, Any], Any]] = {
    "layers[1] = Layer": lambda nn, V, m: m.layers.__setitem__(1, nn.Layer(4, 4)),
    "del layers[1]": lambda nn, V, m: m.layers.__delitem__(1),
    "layers += [Layer]": lambda nn, V, m: m.layers.__iadd__([nn.Layer(2, 3, nonlin=False)]),
    "layers *= 2": lambda nn, V, m: m.layers.__imul__(2),
    "layers.append": lambda nn, V, m: m.layers.append(nn.Layer(2, 2)),
    "layers.extend": lambda nn, V, m: m.layers.extend([nn.Layer(2, 2), nn.Layer(2, 1)]),
    "layers.insert": lambda nn, V, m: m.layers.insert(1, nn.Layer(4, 4)),
    "layers.pop()": lambda nn, V, m: m.layers.pop(),
    "layers.remove": lambda nn, V, m: m.layers.remove(m.layers[1]),
    "layers.clear()": lambda nn, V, m: m.layers.clear(),  # the call hands back its input
    "layers.sort": lambda nn, V, m: m.layers.sort(key=lambda layer: len(layer.neurons)),
    "layers.reverse()": lambda nn, V, m: m.layers.reverse(),
}


@pytest.mark.parametrize("change", WEIGHT_CHANGES.values(), ids=WEIGHT_CHANGES.keys())
def test_every_mutator_of_a_neurons_w(change: Callable) -> None:
    assert_change_is_seen(*twins(mlp), change)


@pytest.mark.parametrize("change", NEURON_CHANGES.values(), ids=NEURON_CHANGES.keys())
def test_every_mutator_of_a_layers_neurons(change: Callable) -> None:
    assert_change_is_seen(*twins(mlp), change)


@pytest.mark.parametrize("change", LAYER_CHANGES.values(), ids=LAYER_CHANGES.keys())
def test_every_mutator_of_an_mlps_layers(change: Callable) -> None:
    assert_change_is_seen(*twins(mlp), change)


@pytest.mark.parametrize(
    "change",
    [
        lambda nn, V, layer: layer.neurons[0].w.append(V(0.5)),
        lambda nn, V, layer: layer.neurons.reverse(),
        lambda nn, V, layer: setattr(layer.neurons[2], "b", V(-3.0)),
    ],
    ids=["w.append", "neurons.reverse()", "b = Value"],
)
def test_a_layer_called_alone_sees_changes_too(change: Callable) -> None:
    assert_change_is_seen(*twins(lambda nn, V: nn.Layer(3, 3, nonlin=False)), change)


def test_a_neuron_called_alone_sees_changes_too() -> None:
    ours, theirs = twins(lambda nn, V: nn.Neuron(3), seed=5)  # a live ReLU at first
    assert_change_is_seen(ours, theirs, lambda nn, V, n: vars(n).__setitem__("b", V(-9.0)))
    assert_change_is_seen(ours, theirs, lambda nn, V, n: n.__dict__.update(nonlin=False))
    assert_change_is_seen(ours, theirs, lambda nn, V, n: n.w.__setitem__(0, V(4.0)))


# -- attributes changed around __setattr__ --------------------------------------------------------


def a_neuron(m: Any) -> Any:
    return m.layers[2].neurons[1]


ATTRIBUTE_CHANGES: dict[str, Callable[[Any, type, Any], Any]] = {
    "__dict__.update(nonlin=True)": lambda nn, V, m: a_neuron(m).__dict__.update(nonlin=True),
    "hidden __dict__.update(nonlin=False)": lambda nn, V, m: (
        m.layers[0].neurons[0].__dict__.update(nonlin=False)
    ),
    "vars(n)['b'] = Value(100.0)": lambda nn, V, m: vars(a_neuron(m)).__setitem__("b", V(100.0)),
    "object.__setattr__(n, 'b')": lambda nn, V, m: object.__setattr__(a_neuron(m), "b", V(-7.0)),
    "n.b = Value": lambda nn, V, m: setattr(a_neuron(m), "b", V(1.0)),
    "n.w = new list": lambda nn, V, m: setattr(
        m.layers[1].neurons[0], "w", [V(0.5), V(-0.25), V(2.0), V(1.0)]
    ),
    "layer.neurons = new list": lambda nn, V, m: setattr(
        m.layers[2], "neurons", [nn.Neuron(4, nonlin=False)]
    ),
    "m.layers = new list": lambda nn, V, m: setattr(m, "layers", m.layers[:2]),
    "vars(layer)['neurons'] = list": lambda nn, V, m: vars(m.layers[1]).__setitem__(
        "neurons", m.layers[1].neurons[::-1]
    ),
    "n.__dict__ = other dict": lambda nn, V, m: setattr(
        a_neuron(m), "__dict__", {"w": [V(1.0)] * 4, "b": V(0.5), "nonlin": False}
    ),
    "n.w = numpy array": lambda nn, V, m: setattr(
        m.layers[1].neurons[0], "w", np.array([V(0.5), V(-0.25), V(2.0), V(1.0)], dtype=object)
    ),
    "vars(n).pop('nonlin')": lambda nn, V, m: vars(m.layers[0].neurons[0]).pop("nonlin"),
}


@pytest.mark.parametrize("change", ATTRIBUTE_CHANGES.values(), ids=ATTRIBUTE_CHANGES.keys())
def test_attributes_changed_by_any_path(change: Callable) -> None:
    assert_change_is_seen(*twins(mlp), change)


def test_a_subclass_whose_setattr_goes_straight_to_object() -> None:
    def build(nn: Any, V: type) -> Any:
        class Quiet(nn.Neuron):
            def __setattr__(self, name: str, value: Any) -> None:
                object.__setattr__(self, name, value)

        m = nn.MLP(3, [4, 4, 2])
        m.layers[1].neurons[2] = Quiet(4)
        return m

    ours, theirs = twins(build)
    assert_change_is_seen(
        ours, theirs, lambda nn, V, m: setattr(m.layers[1].neurons[2], "b", V(-50.0))
    )
    assert_change_is_seen(
        ours, theirs, lambda nn, V, m: setattr(m.layers[1].neurons[2], "nonlin", False)
    )


def test_rollback_by_updating_dict_with_a_deep_copy() -> None:
    ours, theirs = twins(mlp)
    snapshots = []
    for model in (ours, theirs):
        model(X)
        snapshots.append(copy.deepcopy(model.__dict__))  # micrograd copies it; so must we
    for model in (ours, theirs):  # "training"
        for p in model.parameters():
            p.data -= 0.3 * (p.data + 0.1)
    assert outcome(ours, X) == outcome(theirs, X)
    trained = outcome(theirs, X)
    for model, snapshot in zip((ours, theirs), snapshots):
        model.__dict__.update(copy.deepcopy(snapshot))
    assert outcome(theirs, X) != trained
    assert outcome(ours, X) == outcome(theirs, X)


def test_class_changes_are_seen() -> None:
    def tanh_call(self: Any, x: Any) -> Any:
        act = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        return act * 0.5

    def build(nn: Any, V: type) -> Any:
        class Half(nn.Neuron):
            pass

        m = nn.MLP(3, [4, 4, 2])
        m.layers[1].neurons[1] = Half(4)
        return m

    # n.__class__ = another Neuron class with its own __call__
    def swap_class(nn: Any, V: type, m: Any) -> None:
        n = m.layers[1].neurons[0]
        n.__class__ = type("Swapped", (nn.Neuron,), {"__call__": tanh_call})

    assert_change_is_seen(*twins(build), swap_class)

    # a Neuron subclass given its own __call__ after the model ran
    def patch_class(nn: Any, V: type, m: Any) -> None:
        type(m.layers[1].neurons[1]).__call__ = tanh_call

    assert_change_is_seen(*twins(build), patch_class)

    # layer.__class__ = a Layer class with its own __call__
    def swap_layer_class(nn: Any, V: type, m: Any) -> None:
        def reversed_call(self: Any, x: Any) -> Any:
            return [n(x) for n in reversed(self.neurons)]

        m.layers[1].__class__ = type("Reversed", (nn.Layer,), {"__call__": reversed_call})

    assert_change_is_seen(*twins(build), swap_layer_class)


# -- shapes mg_mlp cannot take, and shared parts -------------------------------------------------


@pytest.mark.parametrize("layer, width", [(0, 2), (0, 5), (1, 3), (1, 6), (2, 1)])
def test_neurons_of_unequal_width_in_one_layer(layer: int, width: int) -> None:
    """mg_mlp gives every neuron of a layer the same number of weights: a plan packing them as
    equal would read past the parameter array (tests/c and .ci/sanitize.sh run this under
    ASan)."""

    def build(nn: Any, V: type) -> Any:
        m = nn.MLP(3, [4, 4, 2])
        m.layers[layer].neurons[-1].w = [V(random.uniform(-1, 1)) for _ in range(width)]
        return m

    ours, theirs = twins(build)
    for x in (X, X[:3]):
        assert outcome(ours, x) == outcome(theirs, x)
    ours, theirs = twins(mlp)  # and made unequal after the first call
    assert_change_is_seen(
        ours,
        theirs,
        lambda nn, V, m: setattr(
            m.layers[layer].neurons[-1], "w", [V(0.25 * k - 1) for k in range(width)]
        ),
    )


def test_tied_neurons_and_weights() -> None:
    def tied(nn: Any, V: type) -> Any:
        layer = nn.Layer(50, 1)
        layer.neurons *= 40  # 40 outputs share one Neuron (issue 13's heap overflow)
        return layer

    ours, theirs = twins(tied)
    x = [random.uniform(-1, 1) for _ in range(50)]
    for _ in range(5):
        assert outcome(ours, x) == outcome(theirs, x)

    def shared(nn: Any, V: type) -> Any:
        m = nn.MLP(16, [16] * 8)
        for layer in m.layers[1:]:
            layer.neurons = m.layers[0].neurons  # every layer runs layer 0's neurons
        shared_weight = m.layers[0].neurons[0].w[0]
        m.layers[0].neurons[3].w[5] = shared_weight
        return m

    ours, theirs = twins(shared)
    x = [random.uniform(-1, 1) for _ in range(16)]
    for _ in range(6):
        del_ours = ours(x)
        assert [v.data for v in del_ours] == [v.data for v in theirs(x)]
        del del_ours
    shared_weight = ours.layers[0].neurons[0].w[0]
    shared_weight.data = 0.9  # one Value, read by two neurons in all eight layers
    theirs.layers[0].neurons[0].w[0].data = 0.9
    out_ours, out_theirs = sum(ours(x)), sum(theirs(x))
    assert out_ours.data == out_theirs.data
    out_ours.backward()
    out_theirs.backward()
    assert shared_weight.grad == pytest.approx(theirs.layers[0].neurons[0].w[0].grad, rel=1e-9)
    assert shared_weight.grad != 0


def test_a_neuron_shared_by_two_models_changes_both() -> None:
    def build(nn: Any, V: type) -> Any:
        a, b = nn.MLP(3, [4, 2]), nn.MLP(3, [4, 2])
        b.layers[0].neurons[1] = a.layers[0].neurons[1]
        return a, b

    (ours_a, ours_b), (theirs_a, theirs_b) = twins(build)
    for ours, theirs in ((ours_a, theirs_a), (ours_b, theirs_b)):
        assert outcome(ours, X) == outcome(theirs, X)
    for pair in ((ours_a, ours_b), (theirs_a, theirs_b)):
        pair[0].layers[0].neurons[1].__dict__.update(nonlin=False)
    for ours, theirs in ((ours_a, theirs_a), (ours_b, theirs_b)):
        assert outcome(ours, X) == outcome(theirs, X)


def test_mlp_of_no_layers_hands_back_its_input() -> None:
    ours, theirs = twins(lambda nn, V: nn.MLP(2, []))
    for x in ([1.0, 2.0], [CV(1.0), 2]):
        assert ours(x) is x
    assert theirs([1.0, 2.0]) == [1.0, 2.0]
    assert ours.parameters() == [] and repr(ours) == repr(theirs)
    ours.zero_grad()


# -- the plan is outside the model, and one model's change leaves the others' plans -------------


def test_model_state_copies_after_a_call() -> None:
    model = C.MLP(2, [3, 1])
    out = model([0.5, -0.5]).data
    state = copy.deepcopy(model.__dict__)  # no C arrays in there to trip deepcopy
    assert set(state) == {"layers"} and set(vars(model.layers[0].neurons[0])) == {
        "w",
        "b",
        "nonlin",
    }
    clone = pickle.loads(pickle.dumps(model))
    assert clone([0.5, -0.5]).data == out
    assert type(model.layers) is list and type(model.layers[0].neurons[0].w) is list


def test_one_models_change_replans_that_model_alone() -> None:
    # (The plans are internal; this reads them to see that an unchanged model keeps its own.)
    first, second = C.MLP(2, [3, 1]), C.MLP(2, [3, 1])
    first([0.5, 0.5]), second([0.5, 0.5])
    kept = C._plans[id(second)]
    first.layers[0].neurons[0].b = CV(0.5)
    first.anything = 1  # attributes that no call reads change nothing
    first([0.5, 0.5]), second([0.5, 0.5])
    assert C._plans[id(second)] is kept
    assert C._plans[id(first)] is not None
    replanned = C._plans[id(first)]
    first([0.5, 0.5])
    assert C._plans[id(first)] is replanned


def test_a_models_plan_goes_with_the_model() -> None:
    gc.collect()
    before = len(C._plans)
    models = [C.MLP(2, [3, 1]) for _ in range(20)]
    for m in models:
        m([0.5, 0.5])
        m.layers[0]([0.5, 0.5])
    assert len(C._plans) == before + 40
    del models, m
    gc.collect()
    assert len(C._plans) == before


# -- inputs ------------------------------------------------------------------------------------

INPUTS = {
    "floats": lambda V: [0.5, -1.5, 2.25],
    "ints": lambda V: [1, -2, 3],
    "numpy row": lambda V: np.array([0.5, -1.5, 2.25]),
    # (not np.float32: micrograd computes in float32 then, micrograd_c in double; see README)
    "numpy scalars": lambda V: [np.float64(0.5), np.int64(-2), np.float64(2.25)],
    "Values": lambda V: [V(0.5), V(-1.5), V(2.25)],
    "Values and numbers": lambda V: [0.5, V(-1.5), 2],
    "tuple": lambda V: (0.5, V(-1.5), 2),
    "bools": lambda V: [True, False, True],
}


@pytest.mark.parametrize("make_x", INPUTS.values(), ids=INPUTS.keys())
def test_inputs_of_every_kind(make_x: Callable) -> None:
    ours, theirs = twins(lambda nn, V: nn.MLP(3, [4, 4, 1]))
    assert outcome(ours, make_x(CV)) == outcome(theirs, make_x(MV))


def test_bad_inputs_fail_as_a_value_would() -> None:
    model = C.MLP(2, [3, 1])
    for bad in (["a", 1.0], [1.0, None], [complex(1, 2), 1.0]):
        with pytest.raises(TypeError) as e:
            model(bad)
        with pytest.raises(TypeError) as e_value:
            CV(1.0) * bad[0] if not isinstance(bad[0], float) else CV(1.0) * bad[1]
        assert str(e.value) == str(e_value.value)
    with pytest.raises(OverflowError):
        model([10**400, 1.0])
    assert model([1.0, 2.0]).data == model([1, 2]).data  # the model is fine after


def test_a_value_subclass_input_runs_micrograds_loop() -> None:
    class Loud(CV):
        __slots__ = ()

        def __rmul__(self, other: Any) -> Any:  # micrograd's wi * xi would call this first
            return CV(42.0)

    model = C.Neuron(2, nonlin=False)
    out = model([Loud(1.0), Loud(2.0)])
    assert out.data == 84.0 + model.b.data
