"""`python -m micrograd_c.digits`: scikit-learn's digits, on a small budget, against micrograd."""

from __future__ import annotations

import random
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("sklearn", reason="the digits demo needs the 'demo' extra")
pytest.importorskip("matplotlib", reason="the digits demo needs the 'demo' extra")
pytest.importorskip("tqdm", reason="the digits demo needs the 'demo' extra")

import matplotlib.image  # noqa: E402
import numpy as np  # noqa: E402
from micrograd.engine import Value as MicrogradValue  # noqa: E402
from micrograd.nn import MLP as MicrogradMLP  # noqa: E402

from micrograd_c import digits  # noqa: E402
from micrograd_c.digits import (
    Run,
    hinge_loss,
    load_data,
    main,
    plot,
    predict,  # noqa: E402
    train,
)
from micrograd_c.engine import Value  # noqa: E402
from micrograd_c.nn import MLP  # noqa: E402

from conftest import demo_dependencies_imported_by, run_demo_headless  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SUMMARY = re.compile(
    r"^micrograd_c: (\d+) steps, loss ([0-9.]+) -> ([0-9.]+) .*held-out "
    r"accuracy ([0-9.]+)% of 360 digits",
    re.M,
)


@pytest.fixture(scope="module")
def data() -> digits.Data:
    return load_data(1)


@pytest.fixture
def deep_recursion() -> Iterator[None]:
    """micrograd's recursive backward() needs it for the L2 term's 2,410-long + chain."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(digits.MICROGRAD_RECURSION_LIMIT)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def test_the_split_is_stratified_scaled_and_seeded(data: digits.Data) -> None:
    assert (len(data.X_train), len(data.X_test)) == (1437, 360)
    assert all(len(x) == 64 for x in data.X_train + data.X_test)
    pixels = {p for x in data.X_train + data.X_test for p in x}
    assert min(pixels) == 0.0 and max(pixels) == 0.5
    assert all(type(p) is float for p in data.X_test[0]) and type(data.y_test[0]) is int
    assert sorted(Counter(data.y_test).values())[0] >= 35  # every digit held out ~36 times
    again, other = load_data(1), load_data(2)
    assert (again.X_test, again.y_test) == (data.X_test, data.y_test)
    assert other.X_test != data.X_test


@pytest.mark.parametrize("engine", [Value, MicrogradValue], ids=["micrograd_c", "micrograd"])
def test_hinge_loss_charges_each_class_within_the_margin(engine: type) -> None:
    scores = [engine(s) for s in (2.0, 0.5, 1.8, -1.0, 2.5)]
    loss = hinge_loss(scores, 0)
    # 1 + s_j - s_0 for j = 1..4: -0.5, 0.8, -2.0, 1.5: the two positive ones count.
    assert loss.data == pytest.approx(2.3, abs=1e-15)
    loss.backward()
    assert [s.grad for s in scores] == [-2.0, 0.0, 1.0, 0.0, 1.0]
    assert hinge_loss([engine(5.0), engine(1.0)], 0).data == 0.0  # right by a margin of 4


def test_hinge_loss_is_micrograds_node_for_node() -> None:
    rng = random.Random(3)
    for _ in range(20):
        numbers = [rng.uniform(-3, 3) for _ in range(10)]
        label = rng.randrange(10)
        ours, theirs = [Value(x) for x in numbers], [MicrogradValue(x) for x in numbers]
        loss, reference = hinge_loss(ours, label), hinge_loss(theirs, label)
        assert loss.data == reference.data
        loss.backward()
        reference.backward()
        assert [v.grad for v in ours] == [v.grad for v in theirs]


def test_first_steps_are_micrograds(data: digits.Data, deep_recursion: None) -> None:
    plan = dict(steps=100, batch_size=4, seed=5, stop_after=3, progress=False)
    run = train(MLP, data, **plan)
    reference = train(MicrogradMLP, data, **plan)
    assert len(run.losses) == 3 and len(set(run.losses)) == 3
    assert run.losses[0] == reference.losses[0]  # the same weights, batch and loss
    for ours, theirs in zip(run.losses, reference.losses):  # then gradients summed apart
        assert ours == pytest.approx(theirs, rel=1e-12)


def test_a_small_budget_learns(data: digits.Data) -> None:
    run = train(MLP, data, steps=90, progress=False)  # two epochs, ~1 s
    assert len(run.losses) == 90 and run.batches_per_epoch == 45
    first, last = np.mean(run.losses[:10]), np.mean(run.losses[-10:])
    assert last < first / 3
    predictions = predict(run.model, data.X_test)
    accuracy = np.mean(np.array(predictions) == np.array(data.y_test))
    assert accuracy > 0.8  # chance is 10%


def red_pixels(path: Path) -> int:
    image = matplotlib.image.imread(path)
    return int(np.sum((image[..., 0] > 0.8) & (image[..., 1] < 0.3) & (image[..., 2] < 0.3)))


def test_plot_marks_the_mistakes_in_red(data: digits.Data, tmp_path: Path) -> None:
    run = Run("micrograd_c", model=None, batches_per_epoch=2, losses=[3.0, 2.0, 1.5, 1.2, 1.0])
    plot(run, data, data.y_test, tmp_path / "right.png")
    wrong = [(t + 1) % 10 for t in data.y_test]
    plot(run, data, wrong[:3] + data.y_test[3:], tmp_path / "three.png")
    plot(run, data, wrong, tmp_path / "wrong.png")
    counts = [red_pixels(tmp_path / name) for name in ("right.png", "three.png", "wrong.png")]
    assert counts[0] == 0 < counts[1] < counts[2] / 10


def test_end_to_end_on_a_small_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    png = tmp_path / "d.png"
    assert main(["--steps", "45", "--plot", png]) == 0
    out = capsys.readouterr()
    steps, first, last, accuracy = SUMMARY.search(out.out).groups()
    assert int(steps) == 45 and float(last) < float(first) and float(accuracy) > 50
    assert f"plot written to {png}" in out.out
    assert "45/45" in out.err  # the tqdm bar ran to the end
    assert png.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(png)
    assert 300 <= image.shape[0] < image.shape[1] <= 1600 and image[..., :3].std() > 0.1


def test_compare_times_micrograd_and_extrapolates(
    tmp_path: Path, deep_recursion: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "--steps",
                "6",
                "--batch-size",
                "2",
                "--compare",
                "--compare-steps",
                "2",
                "--plot",
                tmp_path / "d.png",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    found = re.search(
        r"^micrograd: 2 steps in ([0-9.]+) s, (\d+) ms/step; all 6 steps would take "
        r"about ([0-9.]+) s \(extrapolated\) against micrograd_c's ([0-9.]+) s: "
        r"about (\d+)x; largest relative loss difference over those steps (\S+)$",
        out,
        re.M,
    )
    assert found, out
    seconds, ms_per_step, total, _, speed_up, difference = found.groups()
    assert float(total) == pytest.approx(3 * float(seconds), abs=1)
    assert int(speed_up) > 1 and float(difference) < 1e-12


def test_compare_without_micrograd_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(digits, "_import_micrograd", lambda: None)
    png = tmp_path / "d.png"
    assert main(["--compare", "--plot", png]) == 1
    assert "pip install micrograd==0.1.0" in capsys.readouterr().err
    assert not png.exists()  # it stopped before training


@pytest.mark.parametrize(
    "argv",
    [
        ["--steps", "0"],
        ["--epochs", "0"],
        ["--batch-size", "-1"],
        ["--compare-steps", "0"],
        ["--plot", "no/such/dir/d.png"],
    ],
)
def test_bad_arguments_stop_before_training(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_runs_as_a_module_headless_and_imports_its_deps_only_when_run(tmp_path: Path) -> None:
    run_demo_headless("micrograd_c.digits", ["--steps", "2"], tmp_path, "digits.png")
    assert demo_dependencies_imported_by("micrograd_c.digits") == "[]"
