"""Runs each script in examples/ as a user would and checks what it prints or writes."""

from __future__ import annotations

import re
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import micrograd.nn
import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(script: str, *args: str, cwd: Path | None = None) -> str:
    """The script's stdout; fails the test with its stderr if it exits non-zero."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stderr}"
    return done.stdout


def require_dot() -> None:
    if shutil.which("dot") is None:
        pytest.fail(
            "Graphviz's dot program is missing: apt-get install graphviz "
            "(or brew install graphviz) to run the rendering tests"
        )


# The lecture's numbers for its neuron: o = tanh(n) = 0.7071 and these gradients.
LECTURE_GRADS = {
    "x1": -1.5,
    "x2": 0.5,
    "w1": 1.0,
    "w2": 0.0,
    "b": 0.5,
    "x1*w1": 0.5,
    "x2*w2": 0.5,
    "x1*w1 + x2*w2": 0.5,
    "n": 0.5,
    "o": 1.0,
}
ROW = re.compile(r"\s*(.+?)\s+(-?\d+\.\d{4})\s+(-?\d+\.\d{4})\s+(-?\d+\.\d{4})")


def test_neuron_manual_backprop() -> None:
    out = run("neuron_manual_backprop.py")
    assert "o = tanh(n) = 0.7071" in out
    rows = {m[1]: (float(m[3]), float(m[4])) for m in map(ROW.fullmatch, out.splitlines()) if m}
    assert rows == {label: (grad, grad) for label, grad in LECTURE_GRADS.items()}
    assert "manual backprop and backward() agree on every gradient" in out


def test_neuron_draw(tmp_path: Path) -> None:
    require_dot()
    out = run("neuron_draw.py", str(tmp_path / "drawn.svg"))
    assert "10 values, 9 edges" in out
    svg = (tmp_path / "drawn.svg").read_bytes()
    assert svg.startswith(b"<?xml") and b"<svg" in svg
    for label in LECTURE_GRADS:
        assert f">{label}</text>".encode() in svg
    assert b">grad &#45;1.5000</text>" in svg  # x1's gradient, drawn after backward()


def test_neuron_draw_default_path(tmp_path: Path) -> None:
    require_dot()
    run("neuron_draw.py", cwd=tmp_path)
    assert b"<svg" in (tmp_path / "neuron.svg").read_bytes()


def test_mlp_four_points() -> None:
    out = run("mlp_four_points.py")
    losses = [float(loss) for loss in re.findall(r"^step +\d+ loss (\S+)$", out, re.M)]
    assert len(losses) == 50
    assert losses[0] > 10 and losses[-1] < 0.01  # from a random start to a fit
    assert "ReLUNeuron(3)" in out and "LinearNeuron(4)" in out  # micrograd's MLP, not tanh
    # The script's training loop is plain micrograd code: on micrograd it gives these losses.
    train = runpy.run_path(str(EXAMPLES / "mlp_four_points.py"))["train"]
    _, reference = train(micrograd.nn.MLP)
    assert [f"{loss:.6f}" for loss in losses] == [f"{loss:.6f}" for loss in reference]


# -- the notebooks ------------------------------------------------------------------------------

NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


def test_there_is_a_notebook() -> None:
    assert [nb.name for nb in NOTEBOOKS] == ["lecture.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code)


def execute(path: Path) -> list[dict]:
    """Runs the notebook in a Jupyter kernel, as CI does, plus one cell that reports the
    kernel's Python; returns the code cells with their outputs.  Fails on any cell's error."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable)"))
    NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def text_of(cell: dict) -> str:
    return "".join(out["text"] for out in cell["outputs"] if out["output_type"] == "stream")


def test_lecture_notebook_runs_and_shows_its_pictures() -> None:
    pytest.importorskip("nbclient")
    require_dot()
    cells = execute(EXAMPLES / "lecture.ipynb")

    # The kernel is this Python (the venv's), not some other Jupyter's.
    assert text_of(cells[-1]).strip() == sys.executable
    # Every cell that ends in draw_dot(...) shows the graph as an SVG picture.
    drawing = [c for c in cells if c["source"].splitlines()[-1].startswith("draw_dot(")]
    assert len(drawing) == 4
    for cell in drawing:
        svg = [
            out["data"]["image/svg+xml"]
            for out in cell["outputs"]
            if "image/svg+xml" in out.get("data", {})
        ]
        assert len(svg) == 1 and "<svg" in svg[0] and ">grad " in svg[0]
    text = "".join(map(text_of, cells))
    # Backpropagation by hand: the lecture's gradients, and the finite difference agrees.
    for line in (
        "dL/da = 6.0",
        "dL/db = -4.0",
        "dL/dc = -2.0",
        "dL/df = 4.0",
        "dL/dd = -2.0",
        "dL/da: 6.0 by backpropagation, 6.0000 by finite difference",
    ):
        assert line in text
    assert "o = 0.7071; gradients [-1.5, 0.5, 1.0, 0.0, 0.5]" in text
    # micrograd's demo numbers, and the boundary drawn as a picture.
    assert "step   0  loss 0.8958  accuracy 50%" in text
    assert "step  99  loss 0.0110  accuracy 100%" in text
    assert any("image/png" in out.get("data", {}) for out in cells[-2]["outputs"])
