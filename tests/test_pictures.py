"""The demo's picture: its fine decision-boundary mesh."""

from __future__ import annotations

import random

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("sklearn", reason="the demo needs the 'demo' extra")
pytest.importorskip("matplotlib", reason="the demo needs the 'demo' extra")

from micrograd.nn import MLP as MicrogradMLP  # noqa: E402

from micrograd_c.demo import load_data, mesh_scores, train  # noqa: E402
from micrograd_c.engine import Value  # noqa: E402
from micrograd_c.nn import MLP  # noqa: E402


def points(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.uniform(-3, 3, (count, 2)),  # the demo's mesh covers (-2..3)^2
                           [[0.0, 0.0], [1e-300, -1e300], [-0.0, 2.5]]])


def test_mesh_scores_are_the_trained_models_scores_bit_for_bit() -> None:
    run = train(Value, MLP, *load_data(1337), steps=20, progress=False)
    mesh = points(2000, seed=1)
    scores = mesh_scores(run.model, mesh)
    assert scores.shape == (len(mesh),)
    expected = [run.model(row).data for row in mesh.tolist()]
    assert scores.tolist() == expected
    assert 0.2 < np.mean(scores > 0) < 0.8  # both classes occur: the sign means something


@pytest.mark.parametrize("mlp", [MLP, MicrogradMLP], ids=["micrograd_c", "micrograd"])
@pytest.mark.parametrize("sizes", [[16, 16, 1], [3, 1], [1]])
def test_mesh_scores_read_either_engines_mlp(mlp: type, sizes: list[int]) -> None:
    random.seed(7)
    model = mlp(2, sizes)
    for p in model.parameters():  # nonzero biases too, so that the + chain's order matters
        p.data = random.uniform(-2, 2)
    mesh = points(300, seed=2)
    assert mesh_scores(model, mesh).tolist() == [model(row).data for row in mesh.tolist()]
