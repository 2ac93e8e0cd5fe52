"""The README's pictures: the demo's fine decision-boundary mesh, and the files in docs/."""

from __future__ import annotations

import random
import re
import runpy
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("sklearn", reason="the demo needs the 'demo' extra")
pytest.importorskip("matplotlib", reason="the demo needs the 'demo' extra")

import matplotlib.image  # noqa: E402
from micrograd.nn import MLP as MicrogradMLP  # noqa: E402

from micrograd_c.demo import load_data, mesh_scores, train  # noqa: E402
from micrograd_c.engine import Value  # noqa: E402
from micrograd_c.nn import MLP  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def points(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [
            rng.uniform(-3, 3, (count, 2)),  # the demo's mesh covers (-2..3)^2
            [[0.0, 0.0], [1e-300, -1e300], [-0.0, 2.5]],
        ]
    )


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


def readme_pictures() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return re.findall(r"!\[[^\]]*\]\((docs/[^)]+)\)", readme)


def test_readme_shows_the_pictures_that_make_pictures_draws() -> None:
    pictures = runpy.run_path(str(ROOT / "docs" / "make_pictures.py"))["PICTURES"]
    assert (
        sorted(readme_pictures())
        == sorted(pictures)
        == ["docs/digits.png", "docs/moons.png", "docs/neuron.svg"]
    )
    assert "python docs/make_pictures.py" in (ROOT / "README.md").read_text()
    for picture, args in pictures.items():
        assert picture in args  # each command writes its picture where the README shows it


@pytest.mark.parametrize("name", ["moons.png", "digits.png"])
def test_committed_pngs_are_figures(name: str) -> None:
    path = ROOT / "docs" / name
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    height, width, _ = image.shape
    assert 300 <= height < width <= 1600
    assert image[..., :3].std() > 0.1  # a figure, not a blank canvas


def test_committed_neuron_svg_is_the_lecture_neuron_after_backward() -> None:
    svg = (ROOT / "docs" / "neuron.svg").read_text()
    assert svg.startswith("<?xml") and "<svg" in svg
    for label in ("x1", "x2", "w1", "w2", "b", "x1*w1", "x2*w2", "n", "o", "tanh"):
        assert f">{label}</text>" in svg
    assert ">grad &#45;1.5000</text>" in svg  # x1's gradient: drawn after backward()
