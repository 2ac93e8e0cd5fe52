"""The lecture's tiny dataset fitted by an MLP(3, [4, 4, 1]) with squared-error loss.

    python examples/mlp_four_points.py

micrograd's MLP, unlike the lecture's hand-written one, has ReLU hidden layers and a linear
output neuron (no tanh), so the learning rate here is smaller than the lecture's 0.1.  The
`train` loop below is plain micrograd code: given micrograd.nn.MLP it gives the same losses.
"""

from __future__ import annotations

import random
import sys
from typing import Any, Callable

from micrograd_c.nn import MLP

xs = [
    [2.0, 3.0, -1.0],
    [3.0, -1.0, 0.5],
    [0.5, 1.0, 1.0],
    [1.0, 1.0, -1.0],
]
ys = [1.0, -1.0, -1.0, 1.0]  # desired targets

SEED = 2
STEPS = 50
LEARNING_RATE = 0.02


def train(
    mlp: Callable[..., Any], steps: int = STEPS, lr: float = LEARNING_RATE
) -> tuple[Any, list[float]]:
    """Fits a freshly seeded mlp(3, [4, 4, 1]) to (xs, ys); returns it and the loss per step."""
    random.seed(SEED)  # the same initial weights every run
    model = mlp(3, [4, 4, 1])
    losses = []
    for _ in range(steps):
        ypred = [model(x) for x in xs]
        loss = sum((yout - ygt) ** 2 for ygt, yout in zip(ys, ypred))
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data += -lr * p.grad
        losses.append(loss.data)
    return model, losses


def main() -> int:
    model, losses = train(MLP)
    print(model)
    for step, loss in enumerate(losses):
        print(f"step {step:2d} loss {loss:.6f}")
    print("predictions:", " ".join(f"{model(x).data:+.4f}" for x in xs), "targets:", ys)
    return 0


if __name__ == "__main__":
    sys.exit(main())
