/* graph.c: micrograd's scalar autograd graph as an arena of parallel arrays.
 *
 * Invariants (docs/design.md explains the choice):
 *   - a node's parents have smaller indices than the node (bump allocation; compaction keeps order),
 *     so a reverse index sweep is a topological sweep and nothing here recurses;
 *   - a node is live while a handle reaches it through parent links; handles are owned by
 *     Python Values (refcounted: one node has at most one handle, shared by its proxies);
 *   - every entry point takes the arena lock, so each call is atomic whether or not its caller
 *     holds the GIL (the Python build keeps the GIL; C callers and threads have no GIL at all).
 */
#define _POSIX_C_SOURCE 200809L

#include "graph.h"
#include "lock.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NO_NODE UINT32_MAX
#define MARK 0x80u /* op-byte bit: "reached, not yet visited" during walk_down() */
#define MIN_CAPACITY 1024u
#define MAX_NODES ((uint32_t)INT32_MAX)
/* Arena sizing (size_arena(); docs/design.md has the measured curve behind the numbers). */
#define DEFAULT_HEADROOM 250u    /* percent: a resized arena holds 2.5x its live set */
#define SHRINK_AFTER 4u          /* compactions in a row that find the arena oversized, */
#define SHRINK_AFTER_MAX 64u     /* doubling up to this after each probe that finds it needed */
#define TEXT_SLACK ((size_t)1 << 20) /* bytes of dead texts that never force a compaction */

_Static_assert(MG_CUSTOM < MARK, "op codes must leave the mark bit free");

typedef struct {
    uint32_t node; /* the node, or the next free slot while refs == 0 */
    uint32_t refs; /* owners (Python Values); 0 means free */
    uint32_t gen;  /* the generation of the handle now in this slot (see mg_handle) */
} Handle;

#define MAX_GENERATION 0x1fffffu /* 2**21 - 1: generation * 2**32 + slot stays below 2**53;
                                    a slot whose generation reaches it is never reused */

typedef struct {
    uint32_t node;
    int32_t kind;
    size_t len;
    char *text;
} Text;

/* The one piece of global state: the arena. */
static struct {
    mg_lock lock;
    /* nodes, one entry per index */
    double *data;
    double *grad;
    uint32_t *lhs, *rhs;    /* parents, NO_NODE when absent */
    uint32_t *node_handle;  /* the node's handle, NO_NODE when no Value holds it */
    uint8_t *op;
    uint32_t len, cap, limit;
    uint32_t trigger;         /* len that makes reserve() compact: cap, or less for a probe */
    uint32_t headroom;        /* percent of the live set a resized arena holds */
    uint32_t low_compactions; /* compactions in a row that found the arena oversized */
    uint32_t shrink_after;    /* how many make a probe (SHRINK_AFTER, doubling on failed probes) */
    uint64_t low_need;        /* the most slots any of those needed */
    int64_t compactions, resizes, reclaim_ns;
    /* handles */
    Handle *handles;
    uint32_t handles_len, handles_cap, free_handle, live_handles;
    int32_t releases; /* an mg_release_mode: what mg_release does now */
    /* labels and hand-written op names, sorted by node */
    Text *texts;
    size_t texts_len, texts_cap;
    size_t text_bytes;  /* held by texts, live or not yet reclaimed */
    size_t text_budget; /* text_bytes that make set_text compact first */
    /* forward()'s schedule: the nodes with an op that the Value `root` reaches, newest first,
     * kept so that re-running one graph skips the walk (see schedule_fits()) */
    struct {
        mg_handle root;
        uint32_t root_node;
        uint32_t *nodes;
        uint32_t len, cap;
    } schedule;
} A = {
    .lock = MG_LOCK_INIT,
    .limit = MAX_NODES,
    .headroom = DEFAULT_HEADROOM,
    .shrink_after = SHRINK_AFTER,
    .text_budget = TEXT_SLACK,
    .free_handle = NO_NODE,
    .schedule = {.root = -1},
};

/* The body of every entry point: evaluate `expr` of type `type` under the arena lock. */
#define LOCKED(type, expr)          \
    do {                            \
        mg_lock_acquire(&A.lock);   \
        type result_ = (expr);      \
        mg_lock_release(&A.lock);   \
        return result_;             \
    } while (0)

/* ---------------------------------------------------------------- memory ---------------- */

static bool grow_array(void **array, size_t count, size_t item_size) {
    if (count > SIZE_MAX / item_size) return false;
    void *p = realloc(*array, count * item_size);
    if (!p) return false;
    *array = p;
    return true;
}

/* CPU time in nanoseconds, for mg_reclaim_nanoseconds: clock() is the portable C clock
 * (clock_gettime is POSIX: neither MSVC nor mingw's C library has it). */
static int64_t now_ns(void) {
    return (int64_t)((double)clock() * (1e9 / CLOCKS_PER_SEC));
}

/* Resize every node array to new_cap slots (new_cap >= len).  On failure the arena is unchanged
 * in meaning: arrays already resized are merely larger than cap. */
static int32_t resize_arrays(uint32_t new_cap) {
    if (!grow_array((void **)&A.data, new_cap, sizeof *A.data) ||
        !grow_array((void **)&A.grad, new_cap, sizeof *A.grad) ||
        !grow_array((void **)&A.lhs, new_cap, sizeof *A.lhs) ||
        !grow_array((void **)&A.rhs, new_cap, sizeof *A.rhs) ||
        !grow_array((void **)&A.node_handle, new_cap, sizeof *A.node_handle) ||
        !grow_array((void **)&A.op, new_cap, sizeof *A.op)) {
        /* Some arrays were resized: when shrinking, they now hold only new_cap slots. */
        if (new_cap < A.cap) A.cap = new_cap;
        return MG_ERR_NOMEM;
    }
    A.cap = new_cap;
    A.resizes++;
    return MG_OK;
}

static int32_t resize_nodes(uint32_t new_cap) {
    int64_t start = now_ns();
    int32_t status = resize_arrays(new_cap);
    A.trigger = A.cap;
    A.reclaim_ns += now_ns() - start;
    return status;
}

static size_t node_bytes(void) { return (size_t)A.cap * (size_t)mg_bytes_per_node(); }

/* After a compaction, texts may grow by this much before the next one is due: twice what
 * survived (so text-driven compactions cost O(1) per byte), and at least TEXT_SLACK or a
 * quarter of the node arrays (so dead labels never hold much more than the nodes do). */
static void set_text_budget(void) {
    size_t slack = node_bytes() / 4 > TEXT_SLACK ? node_bytes() / 4 : TEXT_SLACK;
    A.text_budget = A.text_bytes > SIZE_MAX / 4 ? SIZE_MAX : 2 * A.text_bytes + slack;
}

/* Drops every node no handle reaches and slides the rest down, keeping their order; texts of
 * dropped nodes are freed in the same single pass over the (node-sorted) text table.  It walks
 * the nodes alone, never the handle table: that keeps its high-water mark (a handle is never
 * moved), so a walk over it would cost every later compaction the largest graph ever made. */
static int32_t compact_nodes(void) {
    uint32_t n = A.len;
    uint32_t *remap = calloc(n ? n : 1, sizeof *remap); /* "live?" flags, then new indices */
    if (!remap) return MG_ERR_NOMEM;
    for (uint32_t i = n; i-- > 0;) { /* live: held by a handle, or a parent of a live node */
        if (A.node_handle[i] != NO_NODE) remap[i] = 1;
        if (!remap[i]) continue;
        if (A.lhs[i] != NO_NODE) remap[A.lhs[i]] = 1;
        if (A.rhs[i] != NO_NODE) remap[A.rhs[i]] = 1;
    }
    uint32_t kept = 0;
    while (kept < n && remap[kept]) remap[kept] = kept, kept++; /* what stays where it is */
    for (uint32_t i = kept; i < n; i++) {
        if (!remap[i]) {
            remap[i] = NO_NODE;
            continue;
        }
        uint32_t k = kept++; /* parents are below i, so their remap already holds new indices */
        A.data[k] = A.data[i];
        A.grad[k] = A.grad[i];
        A.op[k] = A.op[i];
        A.lhs[k] = A.lhs[i] == NO_NODE ? NO_NODE : remap[A.lhs[i]];
        A.rhs[k] = A.rhs[i] == NO_NODE ? NO_NODE : remap[A.rhs[i]];
        A.node_handle[k] = A.node_handle[i];
        if (A.node_handle[k] != NO_NODE) A.handles[A.node_handle[k]].node = k;
        remap[i] = k;
    }
    size_t texts_kept = 0; /* remap keeps node order, so the kept texts stay sorted */
    for (size_t t = 0; t < A.texts_len; t++) {
        Text text = A.texts[t];
        if (remap[text.node] == NO_NODE) {
            A.text_bytes -= text.len;
            free(text.text);
            continue;
        }
        text.node = remap[text.node];
        A.texts[texts_kept++] = text;
    }
    A.texts_len = texts_kept;
    free(remap);
    A.len = kept;
    set_text_budget();
    return MG_OK;
}

static int32_t compact(void) {
    int64_t start = now_ns();
    int32_t status = compact_nodes();
    A.compactions++;
    A.reclaim_ns += now_ns() - start;
    return status;
}

/* The capacity for `need` slots with the arena's headroom, in whole MIN_CAPACITY blocks, and
 * never above the node limit (need itself is at most the limit). */
static uint32_t sized_for(uint64_t need) {
    uint64_t cap = need * A.headroom / 100;
    cap = (cap + MIN_CAPACITY - 1) / MIN_CAPACITY * MIN_CAPACITY;
    if (cap < MIN_CAPACITY) cap = MIN_CAPACITY;
    if (cap > A.limit) cap = A.limit > need ? A.limit : (uint32_t)need;
    return (uint32_t)cap;
}

/* Sizes the arena after a compaction that left `need` = live + requested slots in use.
 *   - Grow, to need * headroom, when the compaction freed too little: the arena would be under
 *     half-way between need and that target.  So growing is geometric, and each compaction
 *     frees at least ~(headroom - 1) / 2 of the live set.
 *   - Shrink when the arena is oversized (need * headroom is under a quarter of it) at
 *     shrink_after compactions in a row, and then at a probe: one more compaction, made early,
 *     half-way through the room left.  The probe is there because compactions at the full mark
 *     can fall at the same point of a repeated workload every time: an arena just big enough
 *     for a training step fills at the step's start, where little is alive, and such samples
 *     say nothing of the step's peak.  The probe samples another point.  If it finds the arena
 *     needed, nothing is resized and the next probe waits twice as long; otherwise the arena
 *     shrinks to the largest need of the run.
 * mg_collect() skips all this (collect()).  Failing to resize is harmless while need fits. */
static int32_t size_arena(uint64_t need, bool probe) {
    A.trigger = A.cap;
    if ((uint64_t)A.cap * 200 < need * (100 + A.headroom)) { /* cap < need * (1 + h) / 2 */
        A.low_compactions = 0;
        A.shrink_after = SHRINK_AFTER;
        return resize_nodes(sized_for(need));
    }
    if ((uint64_t)sized_for(need) * 4 > A.cap) {
        A.low_compactions = 0;
        if (probe && A.shrink_after < SHRINK_AFTER_MAX) A.shrink_after *= 2;
        return MG_OK;
    }
    if (A.low_compactions == 0 || need > A.low_need) A.low_need = need;
    if (probe) {
        A.low_compactions = 0;
        A.shrink_after = SHRINK_AFTER;
        return resize_nodes(sized_for(A.low_need));
    }
    if (++A.low_compactions >= A.shrink_after) {
        uint64_t halfway = A.len + (A.cap - A.len) / 2;
        A.trigger = (uint32_t)(halfway > need ? halfway : need);
    }
    return MG_OK;
}

/* Makes room for `extra` more nodes: reclaims first, then sizes the arena for live + extra.
 * Returns MG_OK exactly when cap - len >= extra afterwards: every caller pushes that many
 * nodes with no further check.  (len <= trigger <= cap holds between calls.) */
static int32_t reserve(uint32_t extra) {
    if (A.trigger - A.len >= extra && (uint64_t)A.len + extra <= A.limit) return MG_OK;
    bool probe = A.trigger < A.cap;
    int32_t status = compact(); /* the limit counts live nodes: reclaim before refusing */
    if (status) return status;
    if ((uint64_t)A.len + extra > A.limit) {
        A.trigger = A.cap;
        return MG_ERR_NODE_LIMIT;
    }
    status = size_arena((uint64_t)A.len + extra, probe);
    assert(A.len <= A.trigger && A.trigger <= A.cap);
    /* Out of memory but still room after reclaiming: carry on in the space we have. */
    if (A.cap - A.len >= extra) return MG_OK;
    return status ? status : MG_ERR_NOMEM;
}

/* ---------------------------------------------------------------- handles --------------- */

#define HANDLE_LIMIT 9007199254740992.0 /* 2**53: every whole number below is a double */

/* The slot of a valid handle (generation * 2**32 + slot). */
static uint32_t slot_of(mg_handle h) { return (uint32_t)((uint64_t)h & 0xffffffffu); }

/* A live handle: a whole number naming an owned slot, and that slot's present generation (not
 * a stale copy of an older one). */
static bool valid(mg_handle h) {
    if (!(h >= 0 && h < HANDLE_LIMIT)) return false; /* (NaN fails both tests) */
    uint64_t whole = (uint64_t)h;
    if ((mg_handle)whole != h) return false;
    uint32_t slot = (uint32_t)(whole & 0xffffffffu);
    return slot < A.handles_len && A.handles[slot].refs > 0 && A.handles[slot].gen == whole >> 32;
}

static mg_handle handle_value(uint32_t slot) {
    return (mg_handle)((uint64_t)A.handles[slot].gen << 32 | slot);
}

/* The node of a valid handle. */
static uint32_t node_of(mg_handle h) { return A.handles[slot_of(h)].node; }

/* The handle of `node`, made if none: its owner count goes up by one. */
static mg_handle handle_for(uint32_t node) {
    uint32_t h = A.node_handle[node];
    if (h != NO_NODE) {
        A.handles[h].refs++;
        return handle_value(h);
    }
    if (A.free_handle != NO_NODE) {
        h = A.free_handle;
        A.free_handle = A.handles[h].node;
    } else {
        if (A.handles_len == A.handles_cap) {
            uint32_t new_cap = A.handles_cap ? A.handles_cap * 2 : MIN_CAPACITY;
            if (new_cap > MAX_NODES) new_cap = MAX_NODES;
            if (new_cap == A.handles_cap) return MG_ERR_NODE_LIMIT;
            if (!grow_array((void **)&A.handles, new_cap, sizeof *A.handles)) return MG_ERR_NOMEM;
            A.handles_cap = new_cap;
        }
        h = A.handles_len++;
        A.handles[h].gen = 0;
    }
    A.handles[h].node = node;
    A.handles[h].refs = 1;
    A.node_handle[node] = h;
    A.live_handles++;
    return handle_value(h);
}

static void drop_handle(mg_handle handle) {
    if (!valid(handle)) return;
    uint32_t h = slot_of(handle);
    if (--A.handles[h].refs) return;
    A.node_handle[A.handles[h].node] = NO_NODE;
    A.live_handles--;
    /* A new generation makes every copy of the old handle stale.  A slot that has used up its
     * generations is retired rather than reused: 12 bytes, once per 2**21 reuses. */
    if (++A.handles[h].gen == MAX_GENERATION) return;
    A.handles[h].node = A.free_handle;
    A.free_handle = h;
}

/* ---------------------------------------------------------------- nodes ----------------- */

/* The node arrays, read once into locals: a store through A.op (a byte, which may alias
 * anything) would otherwise make the compiler reload every field of A after each node. */
typedef struct {
    double *data, *grad;
    uint32_t *lhs, *rhs, *node_handle;
    uint8_t *op;
} Columns;

static inline Columns columns(void) {
    return (Columns){A.data, A.grad, A.lhs, A.rhs, A.node_handle, A.op};
}

/* Writes node i; the caller has reserved room. */
static inline void put(Columns c, uint32_t i, uint8_t op, double data, uint32_t lhs, uint32_t rhs) {
    c.data[i] = data;
    c.grad[i] = 0.0;
    c.op[i] = op;
    c.lhs[i] = lhs;
    c.rhs[i] = rhs;
    c.node_handle[i] = NO_NODE;
}

/* Appends a node; the caller has reserved room. */
static uint32_t push(uint8_t op, double data, uint32_t lhs, uint32_t rhs) {
    assert(A.len < A.cap);
    uint32_t i = A.len++;
    put(columns(), i, op, data, lhs, rhs);
    return i;
}

/* ---------------------------------------------------------------- ops ------------------- */

/* Python's float ** float (Objects/floatobject.c, float_pow), errors included. */
static int32_t py_pow(double base, double exponent, double *out) {
    if (exponent == 0.0) return *out = 1.0, MG_OK;
    if (isnan(base)) return *out = base, MG_OK;
    if (isnan(exponent)) return *out = base == 1.0 ? 1.0 : exponent, MG_OK;
    bool odd = fmod(fabs(exponent), 2.0) == 1.0;
    if (isinf(exponent)) {
        double b = fabs(base);
        if (b == 1.0) *out = 1.0;
        else if ((exponent > 0.0) == (b > 1.0)) *out = fabs(exponent);
        else *out = 0.0;
        return MG_OK;
    }
    if (isinf(base)) {
        if (exponent > 0.0) *out = odd ? base : fabs(base);
        else *out = odd ? copysign(0.0, base) : 0.0;
        return MG_OK;
    }
    if (base == 0.0) {
        if (exponent < 0.0) return MG_ERR_ZERO_POWER;
        return *out = odd ? base : 0.0, MG_OK;
    }
    bool negate = false;
    if (base < 0.0) {
        if (exponent != floor(exponent)) return MG_ERR_COMPLEX_POWER;
        base = -base;
        negate = odd;
    }
    if (base == 1.0) return *out = negate ? -1.0 : 1.0, MG_OK;
    errno = 0;
    double r = pow(base, exponent);
    if (errno == 0 && isinf(r)) errno = ERANGE;
    else if (errno == ERANGE && r == 0.0) errno = 0; /* underflow is not an error */
    if (errno) return MG_ERR_POW_RANGE;
    *out = negate ? -r : r;
    return MG_OK;
}

/* Every op's forward, the one place it is computed: when a node is made (make_binary,
 * make_unary, emit_neuron) and when forward() recomputes it.  out = op(lhs, rhs) from the
 * parents' data (a **'s rhs is the leaf holding its exponent; one-operand ops have no rhs).
 * Writes *out only on success and fails as Python's float arithmetic would.  The op's local
 * backward is the same case in propagate(), just below. */
static inline int32_t forward_of(uint8_t op, double x, double y, double *out) {
    switch (op) {
    case MG_ADD: /* out = a + b */
        *out = x + y;
        return MG_OK;
    case MG_MUL: /* out = a * b */
        *out = x * y;
        return MG_OK;
    case MG_POW:
    case MG_POWI: /* out = a ** e (y, the exponent, is the hidden leaf's data) */
        return py_pow(x, y, out);
    case MG_RELU: /* micrograd: 0 if a < 0 else a (so -0.0 and NaN pass) */
        *out = x < 0 ? 0.0 : x;
        return MG_OK;
    case MG_TANH:
        *out = tanh(x);
        return MG_OK;
    case MG_EXP: {
        double e = exp(x);
        if (isinf(e) && isfinite(x)) return MG_ERR_EXP_RANGE; /* as math.exp */
        *out = e;
        return MG_OK;
    }
    }
    return MG_ERR_BAD_ARGUMENT; /* leaves and hand-built nodes have no forward */
}

/* Every op's local backward, micrograd's _backward() of node i: adds into its parents' grads. */
static inline int32_t propagate(uint32_t i) {
    double g = A.grad[i];
    uint32_t a = A.lhs[i], b = A.rhs[i];
    switch ((uint8_t)(A.op[i] & ~MARK)) {
    case MG_ADD: /* out = a + b */
        A.grad[a] += g;
        A.grad[b] += g;
        return MG_OK;
    case MG_MUL: /* out = a * b */
        A.grad[a] += A.data[b] * g;
        A.grad[b] += A.data[a] * g;
        return MG_OK;
    case MG_POW:
    case MG_POWI: { /* out = a ** e; d/da = e * a ** (e - 1) */
        double e = A.data[b], p; /* e - 1 is kept beside e: see make_unary */
        int32_t status = py_pow(A.data[a], A.grad[b], &p);
        if (status) return status;
        A.grad[a] += (e * p) * g;
        return MG_OK;
    }
    case MG_RELU: /* out = max(a, 0) */
        A.grad[a] += (double)(A.data[i] > 0) * g;
        return MG_OK;
    case MG_TANH: /* out = tanh(a) */
        A.grad[a] += (1.0 - A.data[i] * A.data[i]) * g;
        return MG_OK;
    case MG_EXP: /* out = exp(a) */
        A.grad[a] += A.data[i] * g;
        return MG_OK;
    default: /* leaves and hand-built nodes have no local backward */
        return MG_OK;
    }
}

/* Appends op(lhs, rhs) for an op whose forward cannot fail (+, *, ReLU); room is reserved. */
static inline uint32_t push_op(uint8_t op, uint32_t lhs, uint32_t rhs) {
    double out = 0.0;
    (void)forward_of(op, A.data[lhs], rhs == NO_NODE ? 0.0 : A.data[rhs], &out);
    return push(op, out, lhs, rhs);
}

/* The parents a node shows as _prev (a POW's rhs is its hidden exponent, not a child). */
static uint32_t visible_rhs(uint32_t i) {
    uint8_t op = (uint8_t)(A.op[i] & ~MARK);
    return op == MG_POW || op == MG_POWI ? NO_NODE : A.rhs[i];
}

/* ---------------------------------------------------------------- node makers ----------- */

static mg_handle make_leaf(double data) {
    int32_t status = reserve(1);
    if (status) return status;
    mg_handle h = handle_for(push(MG_LEAF, data, NO_NODE, NO_NODE));
    if (h < 0) A.len--; /* undo: a failed call makes nothing */
    return h;
}

/* a (op) b, where b is a handle or, when b_is_constant, a new leaf holding b_value. */
static mg_handle make_binary(uint8_t op, mg_handle a, mg_handle b, bool b_is_constant,
                             double b_value) {
    if (!valid(a) || (!b_is_constant && !valid(b))) return MG_ERR_BAD_HANDLE;
    uint32_t made = b_is_constant ? 2 : 1;
    int32_t status = reserve(made);
    if (status) return status;
    uint32_t x = node_of(a);
    uint32_t y = b_is_constant ? push(MG_LEAF, b_value, NO_NODE, NO_NODE) : node_of(b);
    mg_handle h = handle_for(push_op(op, x, y));
    if (h < 0) A.len -= made; /* undo: nothing refers to the new nodes yet */
    return h;
}

static mg_handle make_unary(uint8_t op, mg_handle a, double exponent, double exponent_minus_one) {
    if (!valid(a)) return MG_ERR_BAD_HANDLE;
    bool is_pow = op == MG_POW || op == MG_POWI;
    uint32_t made = is_pow ? 2 : 1;
    int32_t status = reserve(made);
    if (status) return status;
    uint32_t x = node_of(a);
    /* A ** node's exponent is a hidden leaf: no Value's, never reached by backward, so its
     * grad field is free to hold the e - 1 of the local backward.  For a Python int e beyond
     * 2**53, float(e - 1) is not float(e) - 1, and micrograd computes the former. */
    uint32_t e = is_pow ? push(MG_LEAF, exponent, NO_NODE, NO_NODE) : NO_NODE;
    if (is_pow) A.grad[e] = exponent_minus_one;
    double out = 0.0;
    status = forward_of(op, A.data[x], is_pow ? A.data[e] : 0.0, &out);
    if (status) {
        A.len -= made - 1; /* undo the exponent's leaf */
        return status;
    }
    mg_handle h = handle_for(push(op, out, x, e));
    if (h < 0) A.len -= made; /* undo: nothing refers to the new nodes yet */
    return h;
}

static mg_handle make_custom(double data, int32_t nparents, const mg_handle *parents) {
    if (nparents < 0 || nparents > 2) return MG_ERR_BAD_ARGUMENT;
    for (int32_t k = 0; k < nparents; k++)
        if (!valid(parents[k])) return MG_ERR_BAD_HANDLE;
    int32_t status = reserve(1);
    if (status) return status;
    uint32_t lhs = nparents > 0 ? node_of(parents[0]) : NO_NODE;
    uint32_t rhs = nparents > 1 ? node_of(parents[1]) : NO_NODE;
    mg_handle h = handle_for(push(MG_CUSTOM, data, lhs, rhs));
    if (h < 0) A.len--;
    return h;
}

mg_handle mg_leaf(double data) { LOCKED(mg_handle, make_leaf(data)); }
mg_handle mg_add(mg_handle a, mg_handle b) { LOCKED(mg_handle, make_binary(MG_ADD, a, b, false, 0.0)); }
mg_handle mg_mul(mg_handle a, mg_handle b) { LOCKED(mg_handle, make_binary(MG_MUL, a, b, false, 0.0)); }
mg_handle mg_add_const(mg_handle a, double b) { LOCKED(mg_handle, make_binary(MG_ADD, a, -1, true, b)); }
mg_handle mg_mul_const(mg_handle a, double b) { LOCKED(mg_handle, make_binary(MG_MUL, a, -1, true, b)); }
mg_handle mg_pow(mg_handle a, double e, double e_minus_1, int is_int) {
    LOCKED(mg_handle, make_unary(is_int ? MG_POWI : MG_POW, a, e, e_minus_1));
}
mg_handle mg_relu(mg_handle a) { LOCKED(mg_handle, make_unary(MG_RELU, a, 0.0, 0.0)); }
mg_handle mg_tanh(mg_handle a) { LOCKED(mg_handle, make_unary(MG_TANH, a, 0.0, 0.0)); }
mg_handle mg_exp(mg_handle a) { LOCKED(mg_handle, make_unary(MG_EXP, a, 0.0, 0.0)); }
mg_handle mg_custom(double data, int32_t n, const mg_handle *parents) { LOCKED(mg_handle, make_custom(data, n, parents)); }

/* One neuron from node *next on: bias + w[0]*x[0] + w[1]*x[1] + ..., then ReLU; returns its
 * output node.  w holds nin weight nodes then the bias node; x[k] == NO_NODE means the number
 * constants[k], given its own leaf.  The running sum stays in a register: the same additions,
 * in the same order, as micrograd's sum(), each by forward_of() (inlined for a known op). */
static uint32_t emit_neuron(Columns c, uint32_t *next, int32_t nin, const uint32_t *w,
                            const uint32_t *x, const double *constants, bool nonlin) {
    uint32_t i = *next, acc = w[nin]; /* sum(..., start=bias) */
    double sum = c.data[acc];
    for (int32_t k = 0; k < nin; k++) {
        uint32_t xk = x[k];
        if (xk == NO_NODE) put(c, xk = i++, MG_LEAF, constants[k], NO_NODE, NO_NODE);
        double product;
        forward_of(MG_MUL, c.data[w[k]], c.data[xk], &product);
        put(c, i, MG_MUL, product, w[k], xk);
        forward_of(MG_ADD, sum, product, &sum);
        put(c, i + 1, MG_ADD, sum, acc, i);
        acc = i + 1;
        i += 2;
    }
    if (nonlin) {
        double out;
        forward_of(MG_RELU, sum, 0.0, &out);
        put(c, i, MG_RELU, out, acc, NO_NODE);
        acc = i++;
    }
    *next = i;
    return acc;
}

static int32_t make_mlp(int32_t nlayers, const int32_t *sizes, const int32_t *nonlin,
                        const mg_handle *params, const mg_handle *inputs, const double *constants,
                        mg_handle *out) {
    if (nlayers < 1) return MG_ERR_BAD_ARGUMENT;
    uint64_t nodes = 0, nparams = 0, widest = 0, leaves = 0;
    if (sizes[0] < 0) return MG_ERR_BAD_ARGUMENT;
    for (int32_t k = 0; k < sizes[0]; k++) {
        if (inputs[k] < 0) leaves++;
        else if (!valid(inputs[k])) return MG_ERR_BAD_HANDLE;
    }
    for (int32_t l = 0; l < nlayers; l++) {
        if (sizes[l + 1] < 0) return MG_ERR_BAD_ARGUMENT;
        uint64_t nin = (uint64_t)sizes[l], nout = (uint64_t)sizes[l + 1];
        uint64_t per_neuron = (l == 0 ? leaves : 0) + 2 * nin + (nonlin[l] ? 1 : 0);
        nodes += per_neuron * nout; /* each term < 2**64 / 4: no overflow for int32 sizes */
        nparams += (nin + 1) * nout;
        if (nin > widest) widest = nin;
        if (nout > widest) widest = nout;
        if (nodes > A.limit) return MG_ERR_NODE_LIMIT;
    }
    /* One block: every parameter's node, then this layer's inputs and outputs.  nparams and
     * widest are below 2**32 * 2**31 (int32 sizes), so the sum cannot wrap. */
    uint64_t scratch_len = nparams + 2 * (widest ? widest : 1);
    if (scratch_len > SIZE_MAX / sizeof(uint32_t)) return MG_ERR_NOMEM;
    uint32_t *scratch = malloc((size_t)scratch_len * sizeof *scratch);
    if (!scratch) return MG_ERR_NOMEM;
    int32_t status = reserve((uint32_t)nodes);
    if (status) {
        free(scratch);
        return status;
    }
    /* Node indices are read after reserve(): a compaction moves nodes.  (A bad parameter is
     * found only now, having reserved for nothing: harmless, and one pass over them.) */
    uint32_t *w = scratch, *x = scratch + nparams, *y = x + (widest ? widest : 1);
    for (uint64_t k = 0; k < nparams; k++) {
        if (!valid(params[k])) {
            free(scratch);
            return MG_ERR_BAD_HANDLE;
        }
        w[k] = node_of(params[k]);
    }
    for (int32_t k = 0; k < sizes[0]; k++)
        x[k] = inputs[k] >= 0 ? node_of(inputs[k]) : NO_NODE;
    Columns c = columns();
    uint32_t first = A.len, next = A.len;
    for (int32_t l = 0; l < nlayers; l++) {
        int32_t nin = sizes[l];
        for (int32_t j = 0; j < sizes[l + 1]; j++) {
            y[j] = emit_neuron(c, &next, nin, w, x, constants, nonlin[l]);
            w += nin + 1;
        }
        uint32_t *swap = x;
        x = y;
        y = swap;
    }
    A.len = next;
    int32_t nout = sizes[nlayers];
    for (int32_t j = 0; j < nout; j++) {
        mg_handle h = handle_for(x[j]);
        if (h < 0) { /* undo: release what we handed out, drop the new nodes */
            while (j > 0) drop_handle(out[--j]);
            A.len = first;
            status = (int32_t)h;
            break;
        }
        out[j] = h;
    }
    free(scratch);
    return status;
}

static int32_t zero_grads(const mg_handle *handles, int32_t n) {
    if (n < 0) return MG_ERR_BAD_ARGUMENT;
    for (int32_t k = 0; k < n; k++)
        if (!valid(handles[k])) return MG_ERR_BAD_HANDLE;
    for (int32_t k = 0; k < n; k++) A.grad[node_of(handles[k])] = 0.0;
    return MG_OK;
}

int32_t mg_mlp(int32_t nlayers, const int32_t *sizes, const int32_t *nonlin,
               const mg_handle *params, const mg_handle *inputs, const double *constants,
               mg_handle *out) {
    LOCKED(int32_t, make_mlp(nlayers, sizes, nonlin, params, inputs, constants, out));
}

int32_t mg_zero_grads(const mg_handle *handles, int32_t n) { LOCKED(int32_t, zero_grads(handles, n)); }

/* ---------------------------------------------------------------- handles API ----------- */

static mg_handle retain(mg_handle h) {
    if (!valid(h)) return MG_ERR_BAD_HANDLE;
    A.handles[slot_of(h)].refs++;
    return h;
}

static int32_t release(mg_handle h) {
    if (A.releases == MG_RELEASE_LATER) return 1;
    if (A.releases == MG_RELEASE_NOW) drop_handle(h);
    return 0;
}

static int32_t set_release_mode(int32_t mode) {
    if (mode != MG_RELEASE_NOW && mode != MG_RELEASE_LATER && mode != MG_RELEASE_NEVER)
        return MG_ERR_BAD_ARGUMENT;
    if (A.releases == MG_RELEASE_NEVER) return MG_OK; /* the process is exiting: stay so */
    A.releases = mode;
    return MG_OK;
}

/* Sets each live handle's owner count to the number of times it appears in owned[] and frees
 * the handles that do not appear: those whose owner vanished without releasing them (an
 * interrupt between a C call's return and Python storing the handle). */
static int64_t reclaim_unowned(const mg_handle *owned, int64_t n) {
    if (n < 0) return MG_ERR_BAD_ARGUMENT;
    uint32_t *owners = calloc(A.handles_len ? A.handles_len : 1, sizeof *owners);
    if (!owners) return MG_ERR_NOMEM;
    for (int64_t k = 0; k < n; k++)
        if (valid(owned[k])) owners[slot_of(owned[k])]++; /* stale or made-up: owns nothing */
    int64_t freed = 0;
    for (uint32_t h = 0; h < A.handles_len; h++) {
        if (!A.handles[h].refs || owners[h] == A.handles[h].refs) continue;
        if (owners[h] == 0) {
            A.handles[h].refs = 1;
            drop_handle(handle_value(h));
            freed++;
        } else {
            A.handles[h].refs = owners[h];
        }
    }
    free(owners);
    return freed;
}

mg_handle mg_retain(mg_handle h) { LOCKED(mg_handle, retain(h)); }
int64_t mg_reclaim_unowned(const mg_handle *owned, int64_t n) {
    LOCKED(int64_t, reclaim_unowned(owned, n));
}
int32_t mg_release(mg_handle h) { LOCKED(int32_t, release(h)); }
void mg_release_now(mg_handle h) {
    mg_lock_acquire(&A.lock);
    drop_handle(h);
    mg_lock_release(&A.lock);
}
int32_t mg_set_release_mode(int32_t mode) { LOCKED(int32_t, set_release_mode(mode)); }

/* ---------------------------------------------------------------- reading, writing ------ */

static double read_field(const double *field, mg_handle h) {
    return valid(h) ? field[node_of(h)] : NAN;
}

static int32_t write_field(double *field, mg_handle h, double value) {
    if (!valid(h)) return MG_ERR_BAD_HANDLE;
    field[node_of(h)] = value;
    return MG_OK;
}

static int32_t node_op(mg_handle h) {
    return valid(h) ? (int32_t)(A.op[node_of(h)] & ~MARK) : MG_ERR_BAD_HANDLE;
}

static double exponent_of(mg_handle h) {
    int32_t op = node_op(h);
    return op == MG_POW || op == MG_POWI ? A.data[A.rhs[node_of(h)]] : NAN;
}

static int32_t parents_of(mg_handle h, mg_handle *out) {
    if (!valid(h)) return MG_ERR_BAD_HANDLE;
    uint32_t i = node_of(h);
    uint32_t parents[2] = {A.lhs[i], visible_rhs(i)};
    int32_t count = 0;
    for (int k = 0; k < 2; k++) {
        if (parents[k] == NO_NODE) continue;
        mg_handle ph = handle_for(parents[k]);
        if (ph < 0) {
            while (count > 0) drop_handle(out[--count]);
            return (int32_t)ph;
        }
        out[count++] = ph;
    }
    return count;
}

double mg_data(mg_handle h) { LOCKED(double, read_field(A.data, h)); }
double mg_grad(mg_handle h) { LOCKED(double, read_field(A.grad, h)); }
int32_t mg_set_data(mg_handle h, double v) { LOCKED(int32_t, write_field(A.data, h, v)); }
int32_t mg_set_grad(mg_handle h, double v) { LOCKED(int32_t, write_field(A.grad, h, v)); }
int32_t mg_op(mg_handle h) { LOCKED(int32_t, node_op(h)); }
double mg_exponent(mg_handle h) { LOCKED(double, exponent_of(h)); }
int32_t mg_parents(mg_handle h, mg_handle *out) { LOCKED(int32_t, parents_of(h, out)); }

/* ---------------------------------------------------------------- texts ----------------- */

/* Index of the first text entry at or after (node, kind) in the sorted table. */
static size_t text_slot(uint32_t node, int32_t kind) {
    size_t lo = 0, hi = A.texts_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const Text *t = &A.texts[mid];
        if (t->node < node || (t->node == node && t->kind < kind)) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static bool text_at(size_t slot, uint32_t node, int32_t kind) {
    return slot < A.texts_len && A.texts[slot].node == node && A.texts[slot].kind == kind;
}

static bool text_kind(int32_t kind) { return kind == MG_TEXT_LABEL || kind == MG_TEXT_OP; }

static void forget_text(size_t slot) {
    A.text_bytes -= A.texts[slot].len;
    free(A.texts[slot].text);
    memmove(&A.texts[slot], &A.texts[slot + 1], (A.texts_len - slot - 1) * sizeof *A.texts);
    A.texts_len--;
}

static int32_t set_text(mg_handle h, int32_t kind, const char *text, size_t len) {
    if (!valid(h)) return MG_ERR_BAD_HANDLE;
    if (!text_kind(kind)) return MG_ERR_BAD_ARGUMENT;
    if (len > INT32_MAX) return MG_ERR_BAD_ARGUMENT;
    /* Texts count toward reclaiming: dead Values' labels are freed before they pile up.  Failing
     * to reclaim here only leaves them for later. */
    if (A.text_bytes >= A.text_budget || len > A.text_budget - A.text_bytes) compact();
    uint32_t node = node_of(h);
    size_t slot = text_slot(node, kind);
    bool found = text_at(slot, node, kind);
    if (len == 0) {
        if (found) forget_text(slot);
        return MG_OK;
    }
    char *copy = malloc(len);
    if (!copy) return MG_ERR_NOMEM;
    memcpy(copy, text, len);
    if (found) {
        A.text_bytes -= A.texts[slot].len;
        free(A.texts[slot].text);
    } else {
        if (A.texts_len == A.texts_cap) {
            size_t new_cap = A.texts_cap ? A.texts_cap * 2 : 16;
            if (!grow_array((void **)&A.texts, new_cap, sizeof *A.texts)) {
                free(copy);
                return MG_ERR_NOMEM;
            }
            A.texts_cap = new_cap;
        }
        memmove(&A.texts[slot + 1], &A.texts[slot], (A.texts_len - slot) * sizeof *A.texts);
        A.texts_len++;
    }
    A.texts[slot] = (Text){.node = node, .kind = kind, .len = len, .text = copy};
    A.text_bytes += len;
    return MG_OK;
}

static int32_t get_text(mg_handle h, int32_t kind, char *buf, size_t size) {
    if (!valid(h)) return MG_ERR_BAD_HANDLE;
    if (!text_kind(kind)) return MG_ERR_BAD_ARGUMENT;
    uint32_t node = node_of(h);
    size_t slot = text_slot(node, kind);
    if (!text_at(slot, node, kind)) return 0;
    const Text *t = &A.texts[slot];
    if (t->len <= size) memcpy(buf, t->text, t->len);
    return (int32_t)t->len;
}

int32_t mg_set_text(mg_handle h, int32_t kind, const char *text, size_t len) {
    LOCKED(int32_t, set_text(h, kind, text, len));
}

int32_t mg_get_text(mg_handle h, int32_t kind, char *buf, size_t size) {
    LOCKED(int32_t, get_text(h, kind, buf, size));
}

/* ---------------------------------------------------------------- sweeps ---------------- */

/* The one mark-and-sweep walk, shared by backward(), trace() and forward(): calls visit(node,
 * context) once for each node root reaches through _prev, in descending index order (a node
 * before its parents).  Index order is topological, so one downward sweep finds them all: MARK
 * says "reached, not yet visited", and the sweep stops at the last marked node.  No recursion,
 * no stack.  A failing visit stops the walk with its status; either way no MARK is left
 * behind.  (static inline: each caller gets its own copy with its visit inlined, so sharing the
 * walk costs the hot backward sweep nothing.) */
static inline int32_t walk_down(uint32_t root, int32_t (*visit)(uint32_t, void *),
                                void *context) {
    uint32_t i = root;
    A.op[i] |= MARK;
    uint64_t pending = 1;
    for (;; i--) {
        if (A.op[i] & MARK) {
            A.op[i] &= (uint8_t)~MARK;
            pending--;
            int32_t status = visit(i, context);
            if (status) {
                while (pending && i-- > 0)
                    if (A.op[i] & MARK) A.op[i] &= (uint8_t)~MARK, pending--;
                return status;
            }
            uint32_t parents[2] = {A.lhs[i], visible_rhs(i)};
            for (int k = 0; k < 2; k++) {
                uint32_t p = parents[k];
                if (p != NO_NODE && !(A.op[p] & MARK)) A.op[p] |= MARK, pending++;
            }
        }
        if (!pending || i == 0) return MG_OK;
    }
}

/* The schedule: walk_down()'s visits of one root, minus leaves and hand-built nodes (which
 * neither sweep changes), recorded by forward() so that forward() and backward() of that root
 * run down a list instead of walking again (about half their time on the moons graph).
 *
 * It stays exact while its root's handle is live and still names node root_node: a node's
 * parents never change, and compaction keeps order, so if it moved no node below the root, no
 * listed node has moved either; if the handle was released, its generation moved on. */
static bool schedule_fits(mg_handle root) {
    return root == A.schedule.root && valid(root) && node_of(root) == A.schedule.root_node;
}

/* Frees the schedule once its graph is gone, so its memory follows the live set down. */
static void forget_stale_schedule(void) {
    if (A.schedule.nodes == NULL || schedule_fits(A.schedule.root)) return;
    free(A.schedule.nodes);
    A.schedule.nodes = NULL;
    A.schedule.len = A.schedule.cap = 0;
    A.schedule.root = -1;
}

static int32_t schedule_visit(uint32_t node, void *unused) {
    (void)unused;
    uint8_t op = A.op[node];
    if (op == MG_LEAF || op == MG_CUSTOM) return MG_OK;
    if (A.schedule.len == A.schedule.cap) {
        uint32_t new_cap = A.schedule.cap < MIN_CAPACITY ? MIN_CAPACITY : 2 * A.schedule.cap;
        if (new_cap > MAX_NODES) new_cap = MAX_NODES; /* len < MAX_NODES: root is a node too */
        if (!grow_array((void **)&A.schedule.nodes, new_cap, sizeof *A.schedule.nodes))
            return MG_ERR_NOMEM;
        A.schedule.cap = new_cap;
    }
    A.schedule.nodes[A.schedule.len++] = node;
    return MG_OK;
}

/* Records root's schedule unless it is the one kept. */
static int32_t make_schedule(mg_handle root) {
    if (schedule_fits(root)) return MG_OK;
    A.schedule.root = -1;
    A.schedule.len = 0;
    int32_t status = walk_down(node_of(root), schedule_visit, NULL);
    if (status) return status;
    A.schedule.root = root;
    A.schedule.root_node = node_of(root);
    if (A.schedule.len < A.schedule.cap / 4) { /* a smaller graph than the last: give back */
        uint32_t new_cap = A.schedule.len < MIN_CAPACITY ? MIN_CAPACITY : A.schedule.len;
        if (grow_array((void **)&A.schedule.nodes, new_cap, sizeof *A.schedule.nodes))
            A.schedule.cap = new_cap; /* failing to shrink is harmless */
    }
    return MG_OK;
}

static int32_t propagate_visit(uint32_t node, void *unused) {
    (void)unused;
    return propagate(node);
}

/* micrograd's backward(): root.grad = 1, then each node reachable from the root, children
 * before parents, runs its local backward: down the schedule if forward() made one for this
 * root, else by walking.  A failing step (0.0 ** -0.5) stops the sweep and leaves the grads
 * made so far, as micrograd's interrupted loop does. */
static int32_t backward(mg_handle root) {
    if (!valid(root)) return MG_ERR_BAD_HANDLE;
    A.grad[node_of(root)] = 1.0;
    if (!schedule_fits(root)) {
        forget_stale_schedule();
        return walk_down(node_of(root), propagate_visit, NULL);
    }
    for (uint32_t k = 0; k < A.schedule.len; k++) {
        int32_t status = propagate(A.schedule.nodes[k]);
        if (status) return status;
    }
    return MG_OK;
}

/* Value.forward(): recomputes, in index (topological) order, the data of every node root
 * reaches from the current data of its leaves, with forward_of(), the code that made each node:
 * so the numbers are bit for bit those of a fresh build.  Each recomputed node's grad goes back
 * to 0, as a fresh node's.  Leaves and hand-built nodes (no forward rule) keep data and grad.
 * When an op fails (0.0 ** -1, overflow, a complex power), the nodes made before it keep their
 * new data; it and every reached node made after it hold NaN ("not computed"); the status is
 * the one building that node gives. */
static int32_t forward(mg_handle root) {
    if (!valid(root)) return MG_ERR_BAD_HANDLE;
    int32_t status = make_schedule(root);
    if (status) return status;
    for (uint32_t k = A.schedule.len; k-- > 0;) { /* oldest first */
        uint32_t i = A.schedule.nodes[k];
        A.grad[i] = 0.0;
        uint32_t rhs = A.rhs[i];
        if (!status)
            status = forward_of(A.op[i], A.data[A.lhs[i]], rhs == NO_NODE ? 0.0 : A.data[rhs],
                                &A.data[i]);
        if (status) A.data[i] = NAN;
    }
    return status;
}

static int32_t local_backward(mg_handle h) {
    return valid(h) ? propagate(node_of(h)) : MG_ERR_BAD_HANDLE;
}

/* Position of node in nodes[0..count), which holds distinct indices in descending order. */
static int32_t position_of(const mg_handle *nodes, int32_t count, uint32_t node) {
    int32_t lo = 0, hi = count;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if ((uint32_t)nodes[mid] > node) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* trace()'s visit: counts the nodes, collecting their indices while they fit. */
typedef struct {
    mg_handle *nodes;
    int64_t capacity, count;
} Collected;

static int32_t collect_visit(uint32_t node, void *context) {
    Collected *c = context;
    if (c->count < c->capacity) c->nodes[c->count] = node;
    c->count++;
    return MG_OK;
}

static int32_t trace(mg_handle root, int32_t capacity, mg_handle *nodes, int32_t *parent_pos) {
    if (!valid(root)) return MG_ERR_BAD_HANDLE;
    if (capacity < 0) return MG_ERR_BAD_ARGUMENT;
    /* Collect the node indices root reaches (newest first) while they fit, counting them; turn
     * them into handles only if all of them did. */
    Collected collected = {.nodes = nodes, .capacity = capacity, .count = 0};
    (void)walk_down(node_of(root), collect_visit, &collected); /* collect_visit never fails */
    int64_t count = collected.count;
    if (count > capacity) return count > INT32_MAX ? INT32_MAX : (int32_t)count;
    int32_t n = (int32_t)count;
    for (int32_t k = 0; k < n; k++) {
        uint32_t node = (uint32_t)nodes[k];
        uint32_t parents[2] = {A.lhs[node], visible_rhs(node)};
        for (int p = 0; p < 2; p++)
            parent_pos[2 * k + p] =
                parents[p] == NO_NODE ? -1 : position_of(nodes, n, parents[p]);
    }
    for (int32_t k = 0; k < n; k++) {
        mg_handle h = handle_for((uint32_t)nodes[k]);
        if (h < 0) {
            while (k > 0) drop_handle(nodes[--k]);
            return (int32_t)h;
        }
        nodes[k] = h;
    }
    return n;
}

int32_t mg_trace(mg_handle root, int32_t capacity, mg_handle *nodes, int32_t *parent_pos) {
    LOCKED(int32_t, trace(root, capacity, nodes, parent_pos));
}

int32_t mg_backward(mg_handle root) { LOCKED(int32_t, backward(root)); }
int32_t mg_forward(mg_handle root) { LOCKED(int32_t, forward(root)); }
int32_t mg_local_backward(mg_handle h) { LOCKED(int32_t, local_backward(h)); }

/* ---------------------------------------------------------------- introspection --------- */

/* mg_collect(): reclaim now, and give memory back at once: the arena is resized to the live
 * set with its headroom when that is smaller (automatic shrinking waits, see size_arena()). */
static int32_t collect(void) {
    int32_t status = compact();
    if (status) return status;
    A.low_compactions = 0;
    A.shrink_after = SHRINK_AFTER;
    A.trigger = A.cap;
    uint32_t fit = sized_for(A.len);
    if (fit < A.cap) resize_nodes(fit); /* failing to shrink is harmless */
    size_t texts_fit = A.texts_len < 8 ? 16 : 2 * A.texts_len;
    if (texts_fit < A.texts_cap && grow_array((void **)&A.texts, texts_fit, sizeof *A.texts))
        A.texts_cap = texts_fit; /* the handle table cannot shrink: its slots are handles */
    return MG_OK;
}

static int32_t set_headroom(int32_t percent) {
    if (percent < 150 || percent > 1000) return MG_ERR_BAD_ARGUMENT;
    A.headroom = (uint32_t)percent;
    return MG_OK;
}

static int64_t arena_bytes(void) {
    return (int64_t)(node_bytes() + A.handles_cap * sizeof *A.handles +
                     A.texts_cap * sizeof *A.texts + A.text_bytes);
}

static int32_t set_node_limit(int64_t limit) {
    if (limit < 1 || limit > MAX_NODES) return MG_ERR_BAD_ARGUMENT;
    A.limit = (uint32_t)limit;
    return MG_OK;
}

int64_t mg_node_count(void) { LOCKED(int64_t, (int64_t)A.len); }
int64_t mg_capacity(void) { LOCKED(int64_t, (int64_t)A.cap); }
int64_t mg_handle_count(void) { LOCKED(int64_t, (int64_t)A.live_handles); }
int32_t mg_collect(void) { LOCKED(int32_t, collect()); }
int64_t mg_compactions(void) { LOCKED(int64_t, A.compactions); }
int64_t mg_arena_resizes(void) { LOCKED(int64_t, A.resizes); }
int64_t mg_reclaim_nanoseconds(void) { LOCKED(int64_t, A.reclaim_ns); }
int64_t mg_arena_bytes(void) { LOCKED(int64_t, arena_bytes()); }
int32_t mg_set_headroom(int32_t percent) { LOCKED(int32_t, set_headroom(percent)); }
int32_t mg_set_node_limit(int64_t limit) { LOCKED(int32_t, set_node_limit(limit)); }

int64_t mg_bytes_per_node(void) {
    return sizeof *A.data + sizeof *A.grad + sizeof *A.lhs + sizeof *A.rhs +
           sizeof *A.node_handle + sizeof *A.op;
}
