"""`python -m micrograd_c.demo`: end to end, against micrograd's own notebook loop."""

from __future__ import annotations

import gc
import random
import re
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("sklearn", reason="the demo needs the 'demo' extra")
pytest.importorskip("matplotlib", reason="the demo needs the 'demo' extra")
pytest.importorskip("tqdm", reason="the demo needs the 'demo' extra")

import matplotlib.image  # noqa: E402
from micrograd.engine import Value as MicrogradValue  # noqa: E402
from micrograd.nn import MLP as MicrogradMLP  # noqa: E402
from sklearn.datasets import make_moons  # noqa: E402

from micrograd_c.demo import load_data, main, train, train_replay  # noqa: E402
from micrograd_c.engine import Value  # noqa: E402
from micrograd_c.nn import MLP  # noqa: E402

from conftest import demo_dependencies_imported_by, run_demo_headless  # noqa: E402

SUMMARY = re.compile(
    r"^(\S+): (\d+) steps, final loss ([0-9.]+), training accuracy ([0-9.]+)%", re.M
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def no_gc() -> Iterator[None]:
    """micrograd's graphs are all reference cycles: with the GC off, its steps are ~10x faster
    and give the same numbers.  Collect once at the end."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect()


def notebook_losses(steps: int, seed: int) -> tuple[list[float], list[float]]:
    """micrograd's demo notebook, as written there (numpy data and all), on micrograd."""
    X, y = make_moons(n_samples=100, noise=0.1, random_state=seed)
    y = y * 2 - 1
    random.seed(seed)
    model = MicrogradMLP(2, [16, 16, 1])
    losses, accuracies = [], []
    for k in range(steps):
        inputs = [list(map(MicrogradValue, xrow)) for xrow in X]
        scores = list(map(model, inputs))
        losses_k = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
        data_loss = sum(losses_k) * (1.0 / len(losses_k))
        alpha = 1e-4
        reg_loss = alpha * sum(p * p for p in model.parameters())
        total_loss = data_loss + reg_loss
        accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(y, scores)]
        model.zero_grad()
        total_loss.backward()
        learning_rate = 1.0 - 0.9 * k / 100
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        losses.append(total_loss.data)
        accuracies.append(sum(accuracy) / len(accuracy))
    return losses, accuracies


def summaries(text: str) -> dict[str, tuple[int, float, float]]:
    """engine name -> (steps, final loss, accuracy %) from the printed summary lines."""
    return {m[1]: (int(m[2]), float(m[3]), float(m[4])) for m in SUMMARY.finditer(text)}


def test_first_losses_are_the_notebooks(
    no_gc: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected_losses, expected_accuracies = notebook_losses(3, seed=1337)
    run = train(Value, MLP, *load_data(1337), steps=3, seed=1337, progress=False)
    assert len(run.losses) == 3 and len(set(run.losses)) == 3
    for ours, theirs in zip(run.losses, expected_losses):
        assert abs(ours - theirs) <= 1e-9 * abs(theirs), (ours, theirs)
    assert run.accuracies == expected_accuracies

    assert main(["--steps", "3", "--plot", tmp_path / "m.png"]) == 0
    steps, final_loss, accuracy = summaries(capsys.readouterr().out)["micrograd_c"]
    assert (steps, final_loss) == (3, round(expected_losses[-1], 6))
    assert accuracy == pytest.approx(100 * expected_accuracies[-1])


def test_three_steps_end_to_end_write_a_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "m.png"
    assert main(["--steps", "3", "--plot", png]) == 0
    out = capsys.readouterr()
    assert png.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(png)
    height, width, channels = image.shape
    assert 200 <= height < width <= 4000 and channels in (3, 4)
    assert image[..., :3].std() > 0.1  # a figure, not a blank canvas
    assert "micrograd_c: 3 steps, final loss" in out.out and "training accuracy" in out.out
    assert str(png) in out.out
    assert "3/3" in out.err  # the tqdm bar ran to the end


def test_default_run_reaches_95_percent_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--plot", tmp_path / "moons.png"]) == 0
    out = capsys.readouterr().out
    steps, loss, accuracy = summaries(out)["micrograd_c"]
    assert steps == 100 and accuracy >= 95 and loss < 0.05
    assert "(target 95%: reached)" in out
    assert re.search(r"[0-9.]+ s wall, [0-9.]+ ms/step", out)


def test_compare_prints_both_times_and_the_speed_up(
    no_gc: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--compare", "--steps", "2", "--plot", tmp_path / "m.png"]) == 0
    out = capsys.readouterr().out
    runs = summaries(out)
    assert runs.keys() == {"micrograd_c", "micrograd"}
    assert runs["micrograd_c"] == pytest.approx(runs["micrograd"], rel=1e-9)
    speed_up = re.search(
        r"speed-up: ([0-9.]+)x \(micrograd_c ([0-9.]+) s, micrograd ([0-9.]+) s\);"
        r" largest relative loss difference ([0-9.e+-]+)",
        out,
    )
    assert speed_up, out
    assert float(speed_up[1]) > 0 and float(speed_up[2]) > 0 and float(speed_up[3]) > 0
    assert float(speed_up[4]) <= 1e-9


def test_replay_trains_to_the_rebuild_loops_losses_bit_for_bit() -> None:
    X, y = load_data(1337)
    rebuilt = train(Value, MLP, X, y, steps=8, seed=1337, progress=False)
    replayed = train_replay(X, y, steps=8, seed=1337, progress=False)
    assert len(set(replayed.losses)) == 8  # it trained: every step's loss is new
    assert [struct.pack("<d", x) for x in replayed.losses] == [
        struct.pack("<d", x) for x in rebuilt.losses
    ]
    assert replayed.accuracies == rebuilt.accuracies
    assert [p.data for p in replayed.model.parameters()] == [
        p.data for p in rebuilt.model.parameters()
    ]


def test_replay_prints_both_loops_ms_per_step(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--replay", "--steps", "3", "--plot", tmp_path / "m.png"]) == 0
    out = capsys.readouterr().out
    runs = summaries(out)
    assert runs.keys() == {"micrograd_c"}  # the replay's line is named "micrograd_c --replay"
    assert "micrograd_c --replay: 3 steps, final loss" in out
    replay = re.search(
        r"replay: ([0-9.]+) ms/step rebuilding the graph, ([0-9.]+) ms/step "
        r"re-running it with forward\(\) \(([0-9.]+)x\); "
        r"losses bit-identical step for step: yes",
        out,
    )
    assert replay, out
    assert float(replay[1]) > 0 and float(replay[2]) > 0


def test_compare_without_micrograd_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("micrograd", "micrograd.engine", "micrograd.nn"):
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    png = tmp_path / "m.png"
    assert main(["--compare", "--steps", "2", "--plot", png]) == 1
    err = capsys.readouterr().err
    assert "pip install micrograd==0.1.0" in err
    assert not png.exists()  # it stopped before training


@pytest.mark.parametrize("argv", [["--steps", "0"], ["--plot", "no/such/dir/m.png"]])
def test_bad_arguments_stop_before_training(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_runs_as_a_module_headless_and_the_core_imports_none_of_its_deps(tmp_path: Path) -> None:
    run_demo_headless("micrograd_c.demo", ["--steps", "1"], tmp_path, "moons.png")
    modules = ("micrograd_c", "micrograd_c.nn", "micrograd_c.demo")
    assert demo_dependencies_imported_by(*modules) == "[]"
