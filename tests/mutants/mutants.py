"""The mutants tests/mutants/run.py plants, one at a time: small bugs a user would see (or that
break memory safety, or memory use), each of which some test must catch.

A mutant is a snippet of a source file and its replacement.  The snippet must occur exactly
once in the file, or the run fails loudly: the code it targets moved, so update the mutant
(never drop it quietly).  Keep snippets short but unique; comments help.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the repository root
    snippet: str  # occurs exactly once in path
    replacement: str
    why: str  # what a user would see


MUTANTS = [
    # -- the classes that once survived the whole suite (issue 15) --------------------------
    Mutant(
        "mlp-relu-forward-le",
        "csrc/graph.c",
        "if (nonlin) acc = push(MG_RELU, A.data[acc] < 0 ? 0.0 : A.data[acc], acc, NO_NODE);",
        "if (nonlin) acc = push(MG_RELU, A.data[acc] <= 0 ? 0.0 : A.data[acc], acc, NO_NODE);",
        "an MLP's ReLU turns -0.0 into 0.0 where Value.relu keeps it",
    ),
    Mutant(
        "exp-backward-recomputes-exp",
        "csrc/graph.c",
        "    case MG_EXP: /* out = exp(a) */\n        A.grad[a] += A.data[i] * g;",
        "    case MG_EXP: /* out = exp(a) */\n        A.grad[a] += exp(A.data[a]) * g;",
        "exp's backward ignores the output's data set after the forward pass",
    ),
    Mutant(
        "arena-lock-removed",
        "csrc/graph.c",
        "        pthread_mutex_lock(&A.lock);   \\\n"
        "        type result_ = (expr);         \\\n"
        "        pthread_mutex_unlock(&A.lock); \\\n",
        "        type result_ = (expr);         \\\n",
        "threads corrupt the arena",
    ),
    Mutant(
        "shrinking-removed",
        "csrc/graph.c",
        "static void maybe_shrink(void) {\n",
        "static void maybe_shrink(void) {\n    return;\n",
        "memory never follows the live set down",
    ),
    Mutant(
        "handle-slots-never-reused",
        "csrc/graph.c",
        "    A.handles[h].node = A.free_handle;\n    A.free_handle = h;\n",
        "",
        "the handle table grows with every Value ever made",
    ),
    # -- graph.c ---------------------------------------------------------------------------
    Mutant(
        "mul-backward-reads-own-data",
        "csrc/graph.c",
        "        A.grad[a] += A.data[b] * g;",
        "        A.grad[a] += A.data[a] * g;",
        "wrong gradient of a * b",
    ),
    Mutant(
        "tanh-backward-sign",
        "csrc/graph.c",
        "A.grad[a] += (1.0 - A.data[i] * A.data[i]) * g;",
        "A.grad[a] += (1.0 + A.data[i] * A.data[i]) * g;",
        "wrong gradient of tanh",
    ),
    Mutant(
        "relu-backward-at-zero",
        "csrc/graph.c",
        "A.grad[a] += (double)(A.data[i] > 0) * g;",
        "A.grad[a] += (double)(A.data[i] >= 0) * g;",
        "a gradient flows through relu(0), where micrograd's does not",
    ),
    Mutant(
        "backward-root-grad-accumulates",
        "csrc/graph.c",
        "    A.grad[i] = 1.0;\n    A.op[i] |= MARK;",
        "    A.grad[i] += 1.0;\n    A.op[i] |= MARK;",
        "a second backward() starts from root.grad 2",
    ),
    Mutant(
        "backward-sweep-stops-above-node-0",
        "csrc/graph.c",
        "        if (!pending || i == 0) return MG_OK;",
        "        if (!pending || i <= 1) return MG_OK;",
        "node 0 of a fresh arena never gets its gradient",
    ),
    Mutant(
        "compaction-keeps-old-parent-index",
        "csrc/graph.c",
        "A.lhs[k] = A.lhs[i] == NO_NODE ? NO_NODE : remap[A.lhs[i]];",
        "A.lhs[k] = A.lhs[i];",
        "after compaction a node's first parent is some other node",
    ),
    Mutant(
        "pow-never-odd",
        "csrc/graph.c",
        "bool odd = fmod(fabs(exponent), 2.0) == 1.0;",
        "bool odd = false;",
        "(-inf) ** 3 is inf and (-0.0) ** 3 is 0.0, unlike Python",
    ),
    Mutant(
        "exp-overflow-not-an-error",
        "csrc/graph.c",
        "return isinf(*out) && isfinite(x) ? MG_ERR_EXP_RANGE : MG_OK;",
        "return MG_OK;",
        "Value(1000.0).exp() is inf instead of math.exp's OverflowError",
    ),
    Mutant(
        "trace-positions-off-by-one",
        "csrc/graph.c",
        "if ((uint32_t)nodes[mid] > node) lo = mid + 1;",
        "if ((uint32_t)nodes[mid] >= node) lo = mid + 1;",
        "draw_dot and trace draw edges to the wrong nodes",
    ),
    Mutant(
        "zero-grads-skips-the-last",
        "csrc/graph.c",
        "for (int32_t k = 0; k < n; k++) A.grad[node_of(handles[k])] = 0.0;",
        "for (int32_t k = 0; k + 1 < n; k++) A.grad[node_of(handles[k])] = 0.0;",
        "Module.zero_grad() leaves the last parameter's grad",
    ),
    Mutant(
        "failed-binary-op-keeps-its-nodes",
        "csrc/graph.c",
        "    if (h < 0) A.len -= made; /* undo: nothing refers to the new nodes yet */",
        "",
        "an op that runs out of memory leaves half-made nodes behind",
    ),
    # -- engine.py -------------------------------------------------------------------------
    Mutant(
        "rsub-operands-swapped",
        "micrograd_c/engine.py",
        "    def __rsub__(self, other: Number) -> Value:  # other - self\n"
        "        return other + (-self)",
        "    def __rsub__(self, other: Number) -> Value:  # other - self\n"
        "        return self + (-other)",
        "2 - v computes v - 2",
    ),
    Mutant(
        "rtruediv-operands-swapped",
        "micrograd_c/engine.py",
        "        return other * self**-1",
        "        return self * other**-1",
        "2 / v computes v / 2",
    ),
    Mutant(
        "int-exponent-flag-inverted",
        "micrograd_c/engine.py",
        "return _adopt(lib.mg_pow(self._h, float(other), isinstance(other, int)))",
        "return _adopt(lib.mg_pow(self._h, float(other), isinstance(other, float)))",
        "v ** 2 shows _op '**2.0', v ** 2.0 shows '**2'",
    ),
    Mutant(
        "strings-accepted-as-numbers",
        "micrograd_c/engine.py",
        "    if isinstance(x, (str, bytes, bytearray)):",
        "    if isinstance(x, (bytes, bytearray)):",
        "Value('1.5') is a Value instead of micrograd's TypeError on arithmetic",
    ),
    Mutant(
        "equality-by-proxy-identity",
        "micrograd_c/engine.py",
        "            return self._h == other._h  # one handle per node",
        "            return self is other",
        "a in c._prev is False for c = a * b",
    ),
    # -- nn.py -----------------------------------------------------------------------------
    Mutant(
        "packed-output-layer-gets-relu",
        "micrograd_c/nn.py",
        'self.nonlin = ffi.new("int32_t[]", [bool(n[0].nonlin) for n in layers])',
        'self.nonlin = ffi.new("int32_t[]", [True for n in layers])',
        "an MLP's linear output layer is clipped at 0",
    ),
    Mutant(
        "zero-grad-skips-first-parameter",
        "micrograd_c/nn.py",
        "        handles = [p._h for p in self.parameters()]",
        "        handles = [p._h for p in self.parameters()[1:]]",
        "zero_grad() leaves the first weight's grad",
    ),
    # -- viz.py ----------------------------------------------------------------------------
    Mutant(
        "trace-edges-reversed",
        "micrograd_c/viz.py",
        "                edges[p, k] = None",
        "                edges[k, p] = None",
        "trace's edges point from result to operand",
    ),
    Mutant(
        "record-text-not-escaped",
        "micrograd_c/viz.py",
        '    for char in "\\\\|{}<>":',
        '    for char in "":',
        "a label with | or { breaks draw_dot's record",
    ),
    # -- _core.py --------------------------------------------------------------------------
    Mutant(
        "zero-power-is-an-arithmetic-error",
        "micrograd_c/_core.py",
        "lib.MG_ERR_ZERO_POWER: (ZeroDivisionError,",
        "lib.MG_ERR_ZERO_POWER: (ArithmeticError,",
        "0.0 ** -1 raises ArithmeticError, not Python's ZeroDivisionError",
    ),
]
