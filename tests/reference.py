"""A pure-Python reference engine: micrograd 0.1.0's Value, rule for rule, plus the lecture's
`tanh` and `exp`, for the ops micrograd itself lacks.

micrograd's rules are copied as they are (ints stay ints: relu's 0, `Value(2) ** 2`), and each
local backward reads what micrograd's closure reads: the operands' data when backward runs, and
for relu and exp the output's data.  The differences from the lecture's code are micrograd_c's,
and the README lists them: `tanh` is `math.tanh` (C's `tanh`) rather than
`(e**2x - 1) / (e**2x + 1)`, and its backward is `(1 - t**2) * out.grad` with `t` the output's
data when backward runs (the lecture's closure keeps the forward pass's `t`).  `backward()`
visits the graph in micrograd's depth-first order, without recursion.
"""

from __future__ import annotations

import math
from typing import Any


class RefValue:
    """stores a single scalar value and its gradient"""

    def __init__(self, data: Any, _children: tuple = (), _op: str = "") -> None:
        self.data = data
        self.grad = 0
        self._backward = lambda: None
        self._prev = set(_children)
        self._op = _op

    def __add__(self, other: Any) -> RefValue:
        other = other if isinstance(other, RefValue) else RefValue(other)
        out = RefValue(self.data + other.data, (self, other), "+")

        def _backward() -> None:
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Any) -> RefValue:
        other = other if isinstance(other, RefValue) else RefValue(other)
        out = RefValue(self.data * other.data, (self, other), "*")

        def _backward() -> None:
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, other: Any) -> RefValue:
        assert isinstance(other, (int, float)), "only supporting int/float powers for now"
        out = RefValue(self.data**other, (self,), f"**{other}")

        def _backward() -> None:
            self.grad += (other * self.data ** (other - 1)) * out.grad

        out._backward = _backward
        return out

    def relu(self) -> RefValue:
        out = RefValue(0 if self.data < 0 else self.data, (self,), "ReLU")

        def _backward() -> None:
            self.grad += (out.data > 0) * out.grad

        out._backward = _backward
        return out

    def tanh(self) -> RefValue:
        out = RefValue(math.tanh(self.data), (self,), "tanh")

        def _backward() -> None:
            self.grad += (1 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def exp(self) -> RefValue:
        out = RefValue(math.exp(self.data), (self,), "exp")

        def _backward() -> None:
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def backward(self) -> None:
        # micrograd's recursive build_topo, as a loop: the same post-order, the same _prev order
        topo: list[RefValue] = []
        visited = {self}
        stack = [(self, iter(self._prev))]
        while stack:
            v, children = stack[-1]
            for child in children:
                if child not in visited:
                    visited.add(child)
                    stack.append((child, iter(child._prev)))
                    break
            else:
                stack.pop()
                topo.append(v)
        self.grad = 1
        for v in reversed(topo):
            v._backward()

    def __neg__(self) -> RefValue:  # -self
        return self * -1

    def __radd__(self, other: Any) -> RefValue:  # other + self
        return self + other

    def __sub__(self, other: Any) -> RefValue:  # self - other
        return self + (-other)

    def __rsub__(self, other: Any) -> RefValue:  # other - self
        return other + (-self)

    def __rmul__(self, other: Any) -> RefValue:  # other * self
        return self * other

    def __truediv__(self, other: Any) -> RefValue:  # self / other
        return self * other**-1

    def __rtruediv__(self, other: Any) -> RefValue:  # other / self
        return other * self**-1

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"
