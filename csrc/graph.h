/* graph.h: the whole C API of micrograd_c's graph core.
 *
 * Nodes live in one growable arena of parallel arrays addressed by 32-bit indices.  Python never
 * sees a node index: every Python Value holds a *handle*, a stable slot in a handle table that
 * points at its node.  Nodes are bump-allocated, so a node's index is always greater than its
 * parents' (index order is a topological order); when the arena is full, nodes no handle can
 * reach are dropped and the rest slide down in order (see docs/design.md).
 *
 * build_ffi.py hands the text between the cffi markers to ffi.cdef(): this header is the single
 * contract between C and Python, so that part holds only declarations cffi can parse.
 */
#ifndef MICROGRAD_C_GRAPH_H
#define MICROGRAD_C_GRAPH_H

#include <stddef.h>
#include <stdint.h>

/* cffi-cdef-begin */

/* A Value's handle: generation * 2**32 + slot, a whole number below 2**53.  A slot's generation
 * moves on each time the slot is freed, so a handle kept past its release (a stale handle) names
 * no node: every call refuses it with MG_ERR_BAD_HANDLE instead of reaching whatever node reuses
 * the slot.  It is a double, not an int64_t, for Python's sake: CPython 3.11 converts an int
 * above 2**30 to and from C through a slow generic path (~130 instructions, three times per
 * operator), a float in a few.  Calls that make a node return a handle, or a status below 0. */
typedef double mg_handle;

/* Calls that make or find a node return a handle (>= 0) or one of these codes (< 0).  Their
 * messages and Python exceptions are one table, in micrograd_c/_core.py. */
enum mg_status {
    MG_OK = 0,
    MG_ERR_NOMEM = -1,         /* an allocation failed */
    MG_ERR_NODE_LIMIT = -2,    /* more live nodes than the node limit (2**31 - 1) */
    MG_ERR_BAD_HANDLE = -3,    /* a handle that no live Value owns */
    MG_ERR_BAD_ARGUMENT = -4,  /* a count or kind out of range */
    MG_ERR_ZERO_POWER = -5,    /* 0.0 ** negative, as Python's ZeroDivisionError */
    MG_ERR_POW_RANGE = -6,     /* float ** float out of range, as Python's OverflowError */
    MG_ERR_COMPLEX_POWER = -7, /* negative ** fractional would be complex */
    MG_ERR_EXP_RANGE = -8      /* exp(x) out of range, as math.exp's OverflowError */
};

/* What made a node.  The local backward of each lives in graph.c next to its forward. */
enum mg_op {
    MG_LEAF = 0,  /* Value(x) */
    MG_ADD = 1,   /* a + b */
    MG_MUL = 2,   /* a * b */
    MG_POW = 3,   /* a ** e, e a float (its rhs is a hidden leaf holding e) */
    MG_POWI = 4,  /* a ** e, e a Python int: the same arithmetic, only the _op text differs */
    MG_RELU = 5,
    MG_TANH = 6,
    MG_EXP = 7,
    MG_CUSTOM = 8 /* Value(x, children, op) built by hand: no local backward, as in micrograd */
};

/* Texts kept beside a node. */
enum mg_text { MG_TEXT_LABEL = 0, MG_TEXT_OP = 1 };

/* Node makers: each returns a new handle owned by the caller (release it with mg_release). */
mg_handle mg_leaf(double data);
mg_handle mg_add(mg_handle a, mg_handle b);
mg_handle mg_mul(mg_handle a, mg_handle b);
mg_handle mg_add_const(mg_handle a, double b);      /* a + Value(b): the leaf is made too */
mg_handle mg_mul_const(mg_handle a, double b);      /* a * Value(b) */
/* a ** e: exponent is float(e) and exponent_minus_one float(e - 1), as Python computes them
 * (for an int e beyond 2**53 these differ from float(e) - 1). */
mg_handle mg_pow(mg_handle a, double exponent, double exponent_minus_one, int exponent_is_int);
mg_handle mg_relu(mg_handle a);
mg_handle mg_tanh(mg_handle a);
mg_handle mg_exp(mg_handle a);
mg_handle mg_custom(double data, int32_t nparents, const mg_handle *parents); /* nparents 0..2 */

/* micrograd's MLP call (or one Layer's, or one Neuron's) in one call.  Layer l maps sizes[l]
 * inputs to sizes[l+1] outputs; its neuron j reads sizes[l] weights then a bias from params (all
 * layers' neurons in order).  Input k of the first layer is the Value inputs[k] or, when
 * inputs[k] < 0, the number constants[k], for which each neuron makes its own leaf, as
 * micrograd's Value(x) does.  Each neuron emits exactly micrograd's nodes: w*x per input, the +
 * chain from the bias in sum() order, then ReLU when nonlin[l].  Writes sizes[nlayers] new
 * handles to out; returns MG_OK or a status. */
int32_t mg_mlp(int32_t nlayers, const int32_t *sizes, const int32_t *nonlin,
               const mg_handle *params, const mg_handle *inputs, const double *constants,
               mg_handle *out);

/* Sets the grad of each of the n Values to 0 (Module.zero_grad()). */
int32_t mg_zero_grads(const mg_handle *handles, int32_t n);

/* The graph behind root for drawing: the nodes it reaches (root first, then the rest from newest
 * to oldest) and for each its _prev as positions in that list (-1 where it has fewer than two).
 * Returns the node count.  Handles (new references) and positions are written only when the
 * count is at most capacity: nodes[capacity], parent_pos[2*capacity]. */
int32_t mg_trace(mg_handle root, int32_t capacity, mg_handle *nodes, int32_t *parent_pos);

/* Handle ownership.  mg_release is what a Value's finalizer calls; what it does depends on the
 * release mode.  While Python's garbage collector runs (MG_RELEASE_LATER), the finalizers of
 * the garbage may still read each other's Values, so a finalizer must not free its node: it
 * gets MG_RELEASE_LATER back and arranges to call mg_release_now once the Value is really
 * gone.  From interpreter exit on (MG_RELEASE_NEVER) nothing is freed any more. */
enum mg_release_mode { MG_RELEASE_NOW = 0, MG_RELEASE_LATER = 1, MG_RELEASE_NEVER = 2 };
mg_handle mg_retain(mg_handle h);    /* one more owner of h; returns h */
int32_t mg_release(mg_handle h);     /* the owner is gone: 1 if the release was put off */
void mg_release_now(mg_handle h);    /* the owner is gone, whatever the mode */
int32_t mg_set_release_mode(int32_t mode); /* NEVER is final */
/* owned[n] lists the handle of every live owner, once per owner: each live handle's owner count
 * becomes its number of appearances, and handles that do not appear are freed.  Returns how
 * many were freed.  For recovering from an interrupt, when Python has counted its Values. */
int64_t mg_reclaim_unowned(const mg_handle *owned, int64_t n);        /* the owner is gone; never fails */

/* Reading and writing a node.  A bad handle reads as NaN / fails with MG_ERR_BAD_HANDLE. */
double mg_data(mg_handle h);
double mg_grad(mg_handle h);
int32_t mg_set_data(mg_handle h, double value);
int32_t mg_set_grad(mg_handle h, double value);
int32_t mg_op(mg_handle h);                         /* an mg_op */
double mg_exponent(mg_handle h);                    /* the exponent of a POW/POWI node */
int32_t mg_parents(mg_handle h, mg_handle *out);      /* out[2]; returns 0..2 new handles;
                                                       a node has one handle, so == is identity */
int32_t mg_set_text(mg_handle h, int32_t kind, const char *text, size_t len); /* len 0 clears */
/* Copies the text (not NUL-terminated) into buf when it fits; returns its full length. */
int32_t mg_get_text(mg_handle h, int32_t kind, char *buf, size_t size);

/* Autograd. */
int32_t mg_backward(mg_handle root);     /* micrograd's backward(): root grad = 1, then the sweep */
int32_t mg_local_backward(mg_handle h);  /* one node's _backward() */
/* Value.forward(): recomputes the data of every node root reaches, in index (topological)
 * order, from the current data of its leaves: bit for bit what building the graph again gives.
 * Each recomputed node's grad goes back to 0.  Leaves and hand-built (MG_CUSTOM) nodes keep
 * their data and grad.  On an op's error it returns the status building would have given; the
 * reached nodes made before the failing one keep their new data, the failing one and those made
 * after it hold NaN, and no leaf changes. */
int32_t mg_forward(mg_handle root);

/* Introspection and test hooks. */
int64_t mg_node_count(void);          /* nodes in the arena, live or not yet reclaimed */
int64_t mg_capacity(void);            /* node slots allocated */
int64_t mg_handle_count(void);        /* handles owned by live Values */
int64_t mg_bytes_per_node(void);      /* arena bytes per node slot */
int64_t mg_arena_bytes(void);         /* bytes the arena holds: node slots, handles, texts */
int64_t mg_compactions(void);         /* compactions so far (reclaiming when full, or asked) */
int64_t mg_arena_resizes(void);       /* times the node arrays were grown or shrunk */
int64_t mg_reclaim_nanoseconds(void); /* CPU time spent compacting and resizing, in total */
/* Reclaims unreachable nodes now and gives memory back: the arena shrinks to its live set (with
 * its headroom) at once.  Otherwise it shrinks only after a run of compactions, at different
 * points of the work, found it oversized, so that a training loop does not shrink and regrow
 * it within each step. */
int32_t mg_collect(void);
/* The arena's headroom in percent of the live set (150..1000, default 250): a compaction that
 * leaves the arena fuller than half-way to it grows it to this.  Tests and bench/ set it. */
int32_t mg_set_headroom(int32_t percent);
int32_t mg_set_node_limit(int64_t limit); /* 1..2**31-1; tests lower it */
int32_t mg_gil_held(void);            /* defined by build_ffi.py: 1 if calls keep the GIL */

/* cffi-cdef-end */

#endif /* MICROGRAD_C_GRAPH_H */
