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
        "        forward_of(MG_RELU, sum, 0.0, &out);\n",
        "        out = sum <= 0 ? 0.0 : sum; /* mg_mlp's own ReLU, no longer forward_of's */\n",
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
        "        mg_lock_acquire(&A.lock);   \\\n"
        "        type result_ = (expr);      \\\n"
        "        mg_lock_release(&A.lock);   \\\n",
        "        type result_ = (expr);      \\\n",
        "threads corrupt the arena",
    ),
    Mutant(
        "shrinking-removed",
        "csrc/graph.c",
        "    if ((uint64_t)sized_for(need) * 4 > A.cap) {",
        "    if (true) { /* never oversized: never shrink */",
        "memory never follows the live set down by itself (only mg_collect shrinks)",
    ),
    Mutant(
        "handle-slots-never-reused",
        "csrc/graph.c",
        "    A.handles[h].node = A.free_handle;\n    A.free_handle = h;\n",
        "",
        "the handle table grows with every Value ever made",
    ),
    Mutant(
        "fits-misses-a-changed-w-list",
        "micrograd_c/nn.py",
        "            if type(n) is not kind or n.w != w or n.b is not b or n.nonlin is not nonlin:",
        "            if type(n) is not kind or n.b is not b or n.nonlin is not nonlin:",
        "after n.w[0] = Value(5) or n.w.append(...) a Layer or MLP call gives stale outputs",
    ),
    Mutant(
        "fits-misses-a-longer-neurons-list",
        "micrograd_c/nn.py",
        "if type(layer) is not kind or type(group) is not list or len(group) != len(parts):",
        "if type(layer) is not kind or type(group) is not list:",
        "after layer.neurons.append(...) or .extend(...) the call still gives the old outputs",
    ),
    Mutant(
        "fits-misses-a-neurons-changed-w",
        "micrograd_c/nn.py",
        "return module.w == w and module.b is b and module.nonlin is nonlin",
        "return module.b is b and module.nonlin is nonlin",
        "after neuron.w[0] = Value(5) a Neuron call gives the old output",
    ),
    Mutant(
        "unequal-widths-packed-as-equal",
        "micrograd_c/nn.py",
        "            if len(n.w) != (len(group[0].w) if width is None else width):\n"
        "                return None\n",
        "",
        "a layer of neurons with unequal w lists is packed as equal: reads past the params",
    ),
    # -- graph.c ---------------------------------------------------------------------------
    Mutant(
        "relu-forward-le",
        "csrc/graph.c",
        "        *out = x < 0 ? 0.0 : x;",
        "        *out = x <= 0 ? 0.0 : x;",
        "Value(-0.0).relu() is 0.0 where micrograd keeps -0.0 (Value.relu and mg_mlp alike)",
    ),
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
        "    A.grad[node_of(root)] = 1.0;",
        "    A.grad[node_of(root)] += 1.0;",
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
        "        if (isinf(e) && isfinite(x)) return MG_ERR_EXP_RANGE; /* as math.exp */\n",
        "",
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
        "    mg_handle h = handle_for(push_op(op, x, y));\n"
        "    if (h < 0) A.len -= made; /* undo: nothing refers to the new nodes yet */\n",
        "    mg_handle h = handle_for(push_op(op, x, y));\n",
        "an op that runs out of memory leaves half-made nodes behind",
    ),
    Mutant(
        "forward-keeps-old-grads",
        "csrc/graph.c",
        "        A.grad[i] = 0.0;\n        uint32_t rhs = A.rhs[i];",
        "        uint32_t rhs = A.rhs[i];",
        "after forward() a recomputed node keeps the grad of the last backward()",
    ),
    Mutant(
        "valid-ignores-generation",
        "csrc/graph.c",
        "    return slot < A.handles_len && A.handles[slot].refs > 0 && "
        "A.handles[slot].gen == whole >> 32;",
        "    return slot < A.handles_len && A.handles[slot].refs > 0;",
        "a stale copy of a freed handle reads (and writes) whatever node reuses its slot",
    ),
    # -- engine.py -------------------------------------------------------------------------
    Mutant(
        "rsub-operands-swapped",
        "micrograd_c/engine.py",
        "        return other + (-self)",
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
        "return _make(lib.mg_pow, self._h, exponent, minus_one, isinstance(other, int))",
        "return _make(lib.mg_pow, self._h, exponent, minus_one, isinstance(other, float))",
        "v ** 2 shows _op '**2.0', v ** 2.0 shows '**2'",
    ),
    Mutant(
        "int-exponent-minus-one-in-floats",
        "micrograd_c/engine.py",
        "exponent, minus_one = float(other), float(other - 1)",
        "exponent, minus_one = float(other), float(other) - 1",
        "the gradient of v ** (2**53 + 1) differs from micrograd's exact int other - 1",
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
    Mutant(
        "finalizer-ignores-put-off-release",
        "micrograd_c/engine.py",
        "            if _release(self._h):  # put off: the collector is running "
        "(never so at exit)\n"
        "                _hold(self)\n",
        "            _release(self._h)\n",
        "a Value freed by the garbage collector never releases its node: cyclic garbage leaks",
    ),
    Mutant(
        "prev-registry-takes-no-reference",
        "micrograd_c/engine.py",
        "        ref.handle = check(lib.mg_retain(handle))",
        "        ref.handle = handle",
        "a Value from _prev releases its node twice when freed: a live Value's node goes",
    ),
    # -- nn.py -----------------------------------------------------------------------------
    Mutant(
        "packed-output-layer-gets-relu",
        "micrograd_c/nn.py",
        'self.nonlin = ffi.new("int32_t[]", [bool(group[0].nonlin) for group in groups])',
        'self.nonlin = ffi.new("int32_t[]", [True for group in groups])',
        "an MLP's linear output layer is clipped at 0",
    ),
    Mutant(
        "zero-grad-skips-first-parameter",
        "micrograd_c/nn.py",
        "        handles = [p._h for p in self.parameters()]",
        "        handles = [p._h for p in self.parameters()[1:]]",
        "zero_grad() leaves the first weight's grad",
    ),
    # -- this session's fixes (the compaction walk, numpy numbers, the Ctrl-C census) -------
    Mutant(
        "compaction-forgets-handle-held-nodes",
        "csrc/graph.c",
        "        if (A.node_handle[i] != NO_NODE) remap[i] = 1;\n",
        "",
        "compaction drops the nodes Values hold: their numbers turn into others' or garbage",
    ),
    Mutant(
        "compaction-leaves-handles-on-old-slots",
        "csrc/graph.c",
        "        if (A.node_handle[k] != NO_NODE) A.handles[A.node_handle[k]].node = k;\n",
        "",
        "after a compaction a Value reads another node's data",
    ),
    Mutant(
        "numpy-strings-taken-as-numbers",
        "micrograd_c/engine.py",
        "not isinstance(x, (numpy.number, numpy.bool_))",
        "not isinstance(x, numpy.generic)",
        "once a numpy.str_ met an operator, Value(numpy.str_('1.5')) is 1.5, not a TypeError",
    ),
    Mutant(
        "census-forgets-its-note-when-interrupted",
        "micrograd_c/engine.py",
        "    held = {id(v) for v in (ref() for ref in list(_held))",
        "    _stranded[0] = False  # cleared before the census, as it once was\n"
        "    held = {id(v) for v in (ref() for ref in list(_held))",
        "a Ctrl-C during the census leaves stranded handles for good",
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
