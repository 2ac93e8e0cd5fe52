"""Edge values through a model's bulk call (one mg_mlp call makes a neuron's nodes in C) give
what Value's own operators give, and what micrograd gives: signed zeros, NaN, infinities."""

import math

import pytest
from micrograd.nn import Layer as MLayer
from micrograd.nn import Neuron as MNeuron

from micrograd_c.engine import Value
from micrograd_c.nn import Layer, Neuron

EDGES = [-0.0, 0.0, math.nan, math.inf, -math.inf, 5e-324, -5e-324]


def same_float(a: float, b: float) -> bool:
    """Equal as floats, NaN included, and with the same sign for zeros."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def set_weights(neuron, w, b):
    neuron.w[0].data = w
    neuron.b.data = b


@pytest.mark.parametrize("bias", [-0.0, 0.0])
@pytest.mark.parametrize("x", EDGES)
@pytest.mark.parametrize("nonlin", [True, False], ids=["relu", "linear"])
def test_a_neurons_output_is_value_arithmetic_and_micrograds(x, bias, nonlin):
    # bias -0.0 and x -0.0: -0.0 + 1.0 * -0.0 is -0.0, which relu keeps (0 if x < 0 else x)
    neuron, reference = Neuron(1, nonlin=nonlin), MNeuron(1, nonlin=nonlin)
    set_weights(neuron, 1.0, bias)
    set_weights(reference, 1.0, bias)
    out = neuron([x])
    by_hand = neuron.b + neuron.w[0] * x
    by_hand = by_hand.relu() if nonlin else by_hand
    want = reference([x])
    assert same_float(out.data, by_hand.data)
    assert same_float(out.data, float(want.data))
    out.backward()
    want.backward()
    assert same_float(neuron.w[0].grad, float(reference.w[0].grad))
    assert same_float(neuron.b.grad, float(reference.b.grad))


@pytest.mark.parametrize("x", EDGES)
def test_a_layers_outputs_are_micrograds(x):
    layer, reference = Layer(1, 3), MLayer(1, 3)
    for k, (n, m) in enumerate(zip(layer.neurons, reference.neurons)):
        set_weights(n, (1.0, -1.0, 0.5)[k], -0.0)
        set_weights(m, (1.0, -1.0, 0.5)[k], -0.0)
    got, want = layer([x]), reference([x])
    assert all(isinstance(v, Value) for v in got)
    assert [repr(v.data) for v in got] == [repr(float(v.data)) for v in want]
