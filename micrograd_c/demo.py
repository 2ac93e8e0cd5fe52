"""micrograd's demo notebook as a program: train MLP(2, [16, 16, 1]) on the two moons.

    python -m micrograd_c.demo                  # 100 steps, writes moons.png
    python -m micrograd_c.demo --compare        # also train micrograd itself, same seed
    python -m micrograd_c.demo --replay         # also train by re-running one graph (forward())

The data, model, loss and SGD loop are the notebook's, line for line, so a run gives micrograd's
numbers.  The loop takes the Value and MLP classes as arguments: `--compare` runs the very same
loop on pure-Python micrograd and reports both wall times.  Needs the `demo` extra
(`pip install "micrograd_c[demo]"`: scikit-learn, matplotlib, tqdm), imported here only.
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from micrograd_c.engine import Value
from micrograd_c.nn import MLP

__all__ = [
    "Run",
    "load_data",
    "loss",
    "svm_loss",
    "train",
    "train_replay",
    "mesh_scores",
    "plot",
    "summary",
    "main",
]

MESH_STEP = 0.02  # the decision boundary's mesh: 2 pixels of the PNG (micrograd's: 0.25)
TARGET_ACCURACY = 0.95  # the notebook's model separates the moons; we check that it still does
MICROGRAD_MISSING = (
    "--compare trains pure-Python micrograd too, but it is not installed.\n"
    'Install it with:  pip install micrograd==0.1.0   (or: pip install "micrograd_c[test]")'
)


def load_data(seed: int = 1337, n_samples: int = 100) -> tuple[list[list[float]], list[int]]:
    """The notebook's two moons, with labels -1/+1, as Python lists of floats and ints.

    Python numbers, not numpy's: a numpy scalar times a Value goes through numpy's object
    machinery on every call (slow) though it gives the same numbers.
    """
    from sklearn.datasets import make_moons

    X, y = make_moons(n_samples=n_samples, noise=0.1, random_state=seed)
    y = y * 2 - 1  # make y be -1 or 1
    return X.tolist(), y.tolist()


def loss(
    model: Any, X: Sequence[Sequence[float]], y: Sequence[int], value: type = Value
) -> tuple[Any, float]:
    """The notebook's loss: SVM max-margin loss plus L2 regularization, and the accuracy.

    `value` is the Value class of the model's engine (micrograd_c's or micrograd's).
    """
    inputs = [list(map(value, xrow)) for xrow in X]
    total_loss, scores = svm_loss(model, inputs, y)
    return total_loss, accuracy(scores, y)


def svm_loss(
    model: Any, inputs: Sequence[Sequence[Any]], y: Sequence[int]
) -> tuple[Any, list[Any]]:
    """The notebook's loss over input Values: the total loss and the model's scores."""
    # forward the model to get scores
    scores = list(map(model, inputs))
    # svm "max-margin" loss
    losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores)]
    data_loss = sum(losses) * (1.0 / len(losses))
    # L2 regularization
    alpha = 1e-4
    reg_loss = alpha * sum(p * p for p in model.parameters())
    total_loss = data_loss + reg_loss
    return total_loss, scores


def accuracy(scores: Sequence[Any], y: Sequence[int]) -> float:
    """The share of points on the right side of the boundary (the notebook's accuracy)."""
    right: list[bool] = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(y, scores)]
    return sum(right) / len(right)


@dataclass
class Run:
    """One training run: the trained model and, per step, the loss and accuracy the step saw
    before its update (what the notebook prints)."""

    name: str
    model: Any
    losses: list[float] = field(default_factory=list)
    accuracies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ms_per_step(self) -> float:
        return 1000.0 * self.seconds / max(len(self.losses), 1)


def _backward_and_update(
    model: Any, total_loss: Any, acc: float, k: int, run: Run, bar: Any
) -> None:
    """The notebook's step after its forward pass, shared by train() and train_replay()."""
    # backward
    model.zero_grad()
    total_loss.backward()
    # update (sgd)
    learning_rate = 1.0 - 0.9 * k / 100
    for p in model.parameters():
        p.data -= learning_rate * p.grad
    run.losses.append(total_loss.data)
    run.accuracies.append(acc)
    if bar is not None:
        bar.set_postfix(loss=f"{total_loss.data:.4f}", accuracy=f"{acc:.0%}", refresh=False)
        bar.update()


def _finish(run: Run, start: float, bar: Any) -> Run:
    run.seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    return run


def train(
    value: type,
    mlp: Callable[..., Any],
    X: Sequence[Sequence[float]],
    y: Sequence[int],
    *,
    steps: int = 100,
    seed: int = 1337,
    name: str = "micrograd_c",
    progress: bool = True,
) -> Run:
    """Seeds `random`, builds mlp(2, [16, 16, 1]) and runs the notebook's SGD loop on it.

    `value` and `mlp` are one engine's classes (micrograd_c.engine.Value and micrograd_c.nn.MLP,
    or micrograd's), so the same loop times both engines.
    """
    random.seed(seed)
    model = mlp(2, [16, 16, 1])  # 2-layer neural network
    run = Run(name, model)
    bar = _progress_bar(steps, name) if progress else None
    start = time.perf_counter()
    for k in range(steps):
        # forward
        total_loss, acc = loss(model, X, y, value)
        _backward_and_update(model, total_loss, acc, k, run, bar)
    return _finish(run, start, bar)


def train_replay(
    X: Sequence[Sequence[float]],
    y: Sequence[int],
    *,
    steps: int = 100,
    seed: int = 1337,
    name: str = "micrograd_c --replay",
    progress: bool = True,
) -> Run:
    """train()'s run on micrograd_c, with the graph built once and re-run each step.

    The loss graph's shape does not depend on the data (ReLU is a node either way), so instead
    of rebuilding it, each step puts the inputs into the input leaves' `.data` and calls
    `total_loss.forward()`, which recomputes every node in C from the leaves (the parameters
    included).  The losses are train()'s bit for bit.
    """
    random.seed(seed)
    model = MLP(2, [16, 16, 1])  # 2-layer neural network
    run = Run(name, model)
    inputs = [[Value(0.0) for _ in xrow] for xrow in X]  # the input leaves
    total_loss, scores = svm_loss(model, inputs, y)  # built once
    fed = None
    bar = _progress_bar(steps, name) if progress else None
    start = time.perf_counter()
    for k in range(steps):
        batch = X  # full batch: the same points every step (a minibatch would be new ones)
        if batch is not fed:  # new inputs go into the input leaves
            for leaves, xrow in zip(inputs, batch):
                for leaf, x in zip(leaves, xrow):
                    leaf.data = x
            fed = batch
        # forward: recompute the graph from its leaves (inputs and parameters)
        total_loss.forward()
        acc = accuracy(scores, y)
        _backward_and_update(model, total_loss, acc, k, run, bar)
    return _finish(run, start, bar)


def _progress_bar(steps: int, name: str) -> Any:
    from tqdm import tqdm  # only for a visible bar: train(progress=False) needs no tqdm

    return tqdm(total=steps, desc=name, unit="step")


def mesh_scores(model: Any, points: Any) -> Any:
    """model(x).data for every row x of the 2-D numpy array points, bit for bit, with numpy
    working on all the points at once instead of one model call per point.

    micrograd's neuron computes b + w0*x0 + w1*x1 + ... from left to right, then ReLU
    (`0 if x < 0 else x`); so does this, for all points at once.  It reads the weights of an
    MLP of either engine (micrograd's or micrograd_c's) through .layers/.neurons/.w/.b/.nonlin.
    """
    import numpy as np

    act = np.ascontiguousarray(np.asarray(points, dtype=float).T)  # a row per input
    for layer in model.layers:
        weights = np.array([[w.data for w in n.w] for n in layer.neurons])  # (nout, nin)
        out = np.repeat([[n.b.data] for n in layer.neurons], act.shape[1], axis=1)
        for i in range(weights.shape[1]):
            out += weights[:, i : i + 1] * act[i]  # the sum's next term, w*x, for every point
        act = np.where(out < 0, 0.0, out) if layer.neurons[0].nonlin else out
    return act[0]


def plot(
    run: Run,
    X: Sequence[Sequence[float]],
    y: Sequence[int],
    path: str | os.PathLike[str],
    h: float = MESH_STEP,
) -> None:
    """Writes a PNG: the model's decision boundary over the data (the notebook's figure) beside
    the loss curve.

    The boundary is the sign of the model's score over a mesh h apart (micrograd's notebook
    uses 0.25, as micrograd takes milliseconds per point), outlined where the score crosses 0.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    Xa, ya = np.asarray(X), np.asarray(y)
    x_min, x_max = Xa[:, 0].min() - 1, Xa[:, 0].max() + 1
    y_min, y_max = Xa[:, 1].min() - 1, Xa[:, 1].max() + 1
    xx, yy = np.meshgrid(np.arange(x_min, x_max, h), np.arange(y_min, y_max, h))
    Z = mesh_scores(run.model, np.c_[xx.ravel(), yy.ravel()]).reshape(xx.shape)
    Z = Z.clip(-1.0, 1.0)  # only the sign is drawn; clipping makes [-1, 0, 1] cover every score

    fig = Figure(figsize=(11, 4.5), layout="constrained")
    FigureCanvasAgg(fig)  # Agg, not pyplot: no display needed, whatever MPLBACKEND says
    boundary, curve = fig.subplots(1, 2)
    boundary.contourf(xx, yy, Z, levels=[-1.0, 0.0, 1.0], cmap="Spectral", alpha=0.8)
    boundary.contour(xx, yy, Z, levels=[0.0], colors="k", linewidths=0.8)
    boundary.scatter(Xa[:, 0], Xa[:, 1], c=ya, s=40, cmap="Spectral", edgecolors="k")
    boundary.set_xlim(xx.min(), xx.max())
    boundary.set_ylim(yy.min(), yy.max())
    boundary.set_title(f"decision boundary after {len(run.losses)} steps")
    curve.plot(range(len(run.losses)), run.losses)
    curve.set_yscale("log")
    curve.set_xlabel("step")
    curve.set_ylabel("total loss (log scale)")
    curve.set_title(f"loss; final accuracy {run.accuracies[-1]:.0%}" if run.losses else "loss")
    fig.savefig(path, dpi=100)


def summary(run: Run) -> str:
    """One line: steps, final loss and accuracy (of the last step, as the notebook prints them),
    whether the accuracy target is reached, wall time and ms/step."""
    acc = run.accuracies[-1]
    verdict = "reached" if acc >= TARGET_ACCURACY else "NOT reached"
    return (
        f"{run.name}: {len(run.losses)} steps, final loss {run.losses[-1]:.6f}, "
        f"training accuracy {acc:.1%} (target {TARGET_ACCURACY:.0%}: {verdict}), "
        f"{run.seconds:.3f} s wall, {run.ms_per_step:.2f} ms/step"
    )


def _import_micrograd() -> tuple[type, type] | None:
    try:
        from micrograd.engine import Value as MicrogradValue
        from micrograd.nn import MLP as MicrogradMLP
    except ImportError:
        return None
    return MicrogradValue, MicrogradMLP


def parse_args(argv: Sequence[Any] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m micrograd_c.demo",
        description="Train micrograd's moons demo (MLP(2, [16, 16, 1]), SVM loss, SGD) on "
        "micrograd_c and plot the decision boundary.",
    )
    parser.add_argument("--steps", type=int, default=100, help="SGD steps (default 100)")
    parser.add_argument(
        "--seed",
        type=int,
        default=1337,
        help="seed of the data (make_moons) and of the weights (random.seed); default 1337",
    )
    parser.add_argument(
        "--plot",
        default="moons.png",
        metavar="PATH",
        help="where to write the PNG (default: moons.png in the current directory)",
    )
    parser.add_argument(
        "--replay",
        action="store_true",
        help="also train by building the loss graph once and re-running it "
        "each step (Value.forward()); print both loops' ms per step and "
        "check their losses are bit-identical",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="also train pure-Python micrograd (same seed, same loop) and "
        "print both wall times and the speed-up",
    )
    args = parser.parse_args(None if argv is None else [str(a) for a in argv])
    if args.steps < 1:
        parser.error("--steps must be at least 1")
    folder = os.path.dirname(args.plot) or "."
    if not os.path.isdir(folder):  # say so now, not after the training
        parser.error(f"--plot: no such directory: {folder}")
    return args


def main(argv: Sequence[Any] | None = None) -> int:
    """Runs the demo; argv defaults to sys.argv[1:] (items may be paths).  Returns the exit
    status: 0, or 1 when --compare cannot import micrograd or --replay's losses differ."""
    args = parse_args(argv)
    reference = None
    if args.compare:
        reference = _import_micrograd()
        if reference is None:  # fail before training: the user asked for a comparison
            print(MICROGRAD_MISSING, file=sys.stderr)
            return 1

    X, y = load_data(args.seed)
    run = train(Value, MLP, X, y, steps=args.steps, seed=args.seed)
    print(summary(run))
    plot(run, X, y, args.plot)
    print(f"plot written to {args.plot}")

    status = 0
    if args.replay:
        replayed = train_replay(X, y, steps=args.steps, seed=args.seed)
        print(summary(replayed))
        same = [struct.pack("<d", a) for a in run.losses] == [
            struct.pack("<d", b) for b in replayed.losses
        ]
        print(
            f"replay: {run.ms_per_step:.3f} ms/step rebuilding the graph, "
            f"{replayed.ms_per_step:.3f} ms/step re-running it with forward() "
            f"({run.seconds / replayed.seconds:.1f}x); "
            f"losses bit-identical step for step: {'yes' if same else 'NO'}"
        )
        status = 0 if same else 1

    if reference is not None:
        # micrograd second: its graphs are freed only by the cyclic GC, and the garbage it
        # leaves behind would slow whatever ran after it.
        slow = train(*reference, X, y, steps=args.steps, seed=args.seed, name="micrograd")
        print(summary(slow))
        worst = max(abs(a - b) / abs(b) for a, b in zip(run.losses, slow.losses))
        print(
            f"speed-up: {slow.seconds / run.seconds:.1f}x "
            f"(micrograd_c {run.seconds:.3f} s, micrograd {slow.seconds:.3f} s); "
            f"largest relative loss difference {worst:.1e}"
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
