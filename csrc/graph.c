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

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NO_NODE UINT32_MAX
#define MARK 0x80u /* op-byte bit: "reached by the running backward sweep" */
#define MIN_CAPACITY 1024u
#define MAX_NODES ((uint32_t)INT32_MAX)

_Static_assert(MG_CUSTOM < MARK, "op codes must leave the mark bit free");

typedef struct {
    uint32_t node; /* the node, or the next free slot while refs == 0 */
    uint32_t refs; /* owners (Python Values); 0 means free */
    uint32_t gen;  /* the generation of the handle now in this slot (see mg_handle) */
} Handle;

#define MAX_GENERATION 0x7fffffffu /* a slot whose generation reaches this is never reused */

typedef struct {
    uint32_t node;
    int32_t kind;
    size_t len;
    char *text;
} Text;

/* The one piece of global state: the arena. */
static struct {
    pthread_mutex_t lock;
    /* nodes, one entry per index */
    double *data;
    double *grad;
    uint32_t *lhs, *rhs;    /* parents, NO_NODE when absent */
    uint32_t *node_handle;  /* the node's handle, NO_NODE when no Value holds it */
    uint8_t *op;
    uint32_t len, cap, limit;
    /* handles */
    Handle *handles;
    uint32_t handles_len, handles_cap, free_handle, live_handles;
    int32_t releases; /* an mg_release_mode: what mg_release does now */
    /* labels and hand-written op names, sorted by node */
    Text *texts;
    size_t texts_len, texts_cap;
} A = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .limit = MAX_NODES,
    .free_handle = NO_NODE,
};

/* The body of every entry point: evaluate `expr` of type `type` under the arena lock. */
#define LOCKED(type, expr)             \
    do {                               \
        pthread_mutex_lock(&A.lock);   \
        type result_ = (expr);         \
        pthread_mutex_unlock(&A.lock); \
        return result_;                \
    } while (0)

/* ---------------------------------------------------------------- memory ---------------- */

static bool grow_array(void **array, size_t count, size_t item_size) {
    if (count > SIZE_MAX / item_size) return false;
    void *p = realloc(*array, count * item_size);
    if (!p) return false;
    *array = p;
    return true;
}

/* Resize every node array to new_cap slots (new_cap >= len).  On failure the arena is unchanged
 * in meaning: arrays already resized are merely larger than cap. */
static int32_t resize_nodes(uint32_t new_cap) {
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
    return MG_OK;
}

static void forget_text(size_t i) {
    free(A.texts[i].text);
    memmove(&A.texts[i], &A.texts[i + 1], (A.texts_len - i - 1) * sizeof *A.texts);
    A.texts_len--;
}

/* Drops every node no handle reaches and slides the rest down, keeping their order. */
static int32_t compact(void) {
    uint32_t n = A.len;
    if (n == 0) return MG_OK;
    uint32_t *remap = calloc(n, sizeof *remap); /* first "live?" flags, then new indices */
    if (!remap) return MG_ERR_NOMEM;
    for (uint32_t h = 0; h < A.handles_len; h++)
        if (A.handles[h].refs) remap[A.handles[h].node] = 1;
    for (uint32_t i = n; i-- > 0;) {
        if (!remap[i]) continue;
        if (A.lhs[i] != NO_NODE) remap[A.lhs[i]] = 1;
        if (A.rhs[i] != NO_NODE) remap[A.rhs[i]] = 1;
    }
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; i++) {
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
        remap[i] = k;
    }
    for (uint32_t h = 0; h < A.handles_len; h++)
        if (A.handles[h].refs) A.handles[h].node = remap[A.handles[h].node];
    for (size_t t = A.texts_len; t-- > 0;) {
        if (remap[A.texts[t].node] == NO_NODE)
            forget_text(t);
        else
            A.texts[t].node = remap[A.texts[t].node];
    }
    free(remap);
    A.len = kept;
    return MG_OK;
}

/* Shrinks the arena after a big graph was dropped, so memory follows the live set down. */
static void maybe_shrink(void) {
    if (A.cap <= MIN_CAPACITY || (uint64_t)A.len * 8 > A.cap) return;
    uint32_t new_cap = A.cap; /* halve while the survivors would still fill under a quarter */
    while (new_cap / 2 >= MIN_CAPACITY && (uint64_t)A.len * 4 <= new_cap / 2) new_cap /= 2;
    resize_nodes(new_cap); /* failing to shrink is harmless */
}

/* Makes room for `extra` more nodes: reclaim first, grow when the arena stays over half full. */
static int32_t reserve(uint32_t extra) {
    if (A.cap - A.len >= extra && (uint64_t)A.len + extra <= A.limit) return MG_OK;
    int32_t status = compact(); /* the limit counts live nodes: reclaim before refusing */
    if (status) return status;
    if ((uint64_t)A.len + extra > A.limit) return MG_ERR_NODE_LIMIT;
    uint64_t want = (uint64_t)A.len + extra;
    if (want * 2 <= A.cap) {
        maybe_shrink();
        return MG_OK;
    }
    uint64_t new_cap = A.cap < MIN_CAPACITY ? MIN_CAPACITY : A.cap;
    while (new_cap < want * 2) new_cap *= 2;
    if (new_cap > A.limit) new_cap = A.limit;
    status = resize_nodes((uint32_t)new_cap);
    /* Out of memory but still room after reclaiming: carry on in the space we have. */
    if (status && A.cap - A.len >= extra) return MG_OK;
    return status;
}

/* ---------------------------------------------------------------- handles --------------- */

static uint32_t slot_of(mg_handle h) { return (uint32_t)(h & 0xffffffff); }
static uint32_t generation_of(mg_handle h) { return (uint32_t)(h >> 32); }

/* A live handle: its slot is owned, and by this generation (not a stale copy of an older one). */
static bool valid(mg_handle h) {
    if (h < 0) return false;
    uint32_t slot = slot_of(h);
    return slot < A.handles_len && A.handles[slot].refs > 0 &&
           A.handles[slot].gen == generation_of(h);
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
     * generations is retired rather than reused: 8 bytes, once per 2**31 reuses. */
    if (++A.handles[h].gen == MAX_GENERATION) return;
    A.handles[h].node = A.free_handle;
    A.free_handle = h;
}

/* ---------------------------------------------------------------- nodes ----------------- */

/* Appends a node; the caller has reserved room. */
static uint32_t push(uint8_t op, double data, uint32_t lhs, uint32_t rhs) {
    uint32_t i = A.len++;
    A.data[i] = data;
    A.grad[i] = 0.0;
    A.op[i] = op;
    A.lhs[i] = lhs;
    A.rhs[i] = rhs;
    A.node_handle[i] = NO_NODE;
    return i;
}

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

/* Forward of a one-parent op on x (its local backward is in propagate()). */
static int32_t unary_forward(uint8_t op, double x, double exponent, double *out) {
    switch (op) {
    case MG_POW:
    case MG_POWI:
        return py_pow(x, exponent, out);
    case MG_RELU:
        *out = x < 0 ? 0.0 : x; /* micrograd: 0 if x < 0 else x (so -0.0 and NaN pass) */
        return MG_OK;
    case MG_TANH:
        *out = tanh(x);
        return MG_OK;
    case MG_EXP:
        *out = exp(x);
        return isinf(*out) && isfinite(x) ? MG_ERR_EXP_RANGE : MG_OK;
    }
    return MG_ERR_BAD_ARGUMENT;
}

/* One node's local backward, micrograd's _backward(): adds into its parents' grads. */
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
        double e = A.data[b], p;
        int32_t status = py_pow(A.data[a], e - 1.0, &p);
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

/* The parents a node shows as _prev (a POW's rhs is its hidden exponent, not a child). */
static uint32_t visible_rhs(uint32_t i) {
    uint8_t op = (uint8_t)(A.op[i] & ~MARK);
    return op == MG_POW || op == MG_POWI ? NO_NODE : A.rhs[i];
}

/* ---------------------------------------------------------------- node makers ----------- */

static mg_handle make_leaf(double data) {
    int32_t status = reserve(1);
    if (status) return status;
    return handle_for(push(MG_LEAF, data, NO_NODE, NO_NODE));
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
    double out = op == MG_ADD ? A.data[x] + A.data[y] : A.data[x] * A.data[y];
    mg_handle h = handle_for(push(op, out, x, y));
    if (h < 0) A.len -= made; /* undo: nothing refers to the new nodes yet */
    return h;
}

static mg_handle make_unary(uint8_t op, mg_handle a, double exponent) {
    if (!valid(a)) return MG_ERR_BAD_HANDLE;
    bool is_pow = op == MG_POW || op == MG_POWI;
    int32_t status = reserve(is_pow ? 2 : 1);
    if (status) return status;
    uint32_t x = node_of(a);
    double out;
    status = unary_forward(op, A.data[x], exponent, &out);
    if (status) return status;
    uint32_t e = is_pow ? push(MG_LEAF, exponent, NO_NODE, NO_NODE) : NO_NODE;
    mg_handle h = handle_for(push(op, out, x, e));
    if (h < 0) A.len -= is_pow ? 2 : 1;
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
mg_handle mg_pow(mg_handle a, double e, int is_int) { LOCKED(mg_handle, make_unary(is_int ? MG_POWI : MG_POW, a, e)); }
mg_handle mg_relu(mg_handle a) { LOCKED(mg_handle, make_unary(MG_RELU, a, 0.0)); }
mg_handle mg_tanh(mg_handle a) { LOCKED(mg_handle, make_unary(MG_TANH, a, 0.0)); }
mg_handle mg_exp(mg_handle a) { LOCKED(mg_handle, make_unary(MG_EXP, a, 0.0)); }
mg_handle mg_custom(double data, int32_t n, const mg_handle *parents) { LOCKED(mg_handle, make_custom(data, n, parents)); }

/* One neuron: bias + w[0]*x[0] + w[1]*x[1] + ..., then ReLU.  x[k] == NO_NODE means the
 * number constants[k], given its own leaf. */
static uint32_t emit_neuron(int32_t nin, const mg_handle *w, const uint32_t *x,
                            const double *constants, bool nonlin) {
    uint32_t acc = node_of(w[nin]); /* sum(..., start=bias) */
    for (int32_t k = 0; k < nin; k++) {
        uint32_t xk = x[k] != NO_NODE ? x[k] : push(MG_LEAF, constants[k], NO_NODE, NO_NODE);
        uint32_t wk = node_of(w[k]);
        uint32_t product = push(MG_MUL, A.data[wk] * A.data[xk], wk, xk);
        acc = push(MG_ADD, A.data[acc] + A.data[product], acc, product);
    }
    if (nonlin) acc = push(MG_RELU, A.data[acc] < 0 ? 0.0 : A.data[acc], acc, NO_NODE);
    return acc;
}

static int32_t make_mlp(int32_t nlayers, const int32_t *sizes, const int32_t *nonlin,
                        const mg_handle *params, const mg_handle *inputs, const double *constants,
                        mg_handle *out) {
    if (nlayers < 1) return MG_ERR_BAD_ARGUMENT;
    uint64_t nodes = 0, nparams = 0, widest = 0, leaves = 0;
    for (int32_t k = 0; k < sizes[0]; k++) {
        if (inputs[k] < 0) leaves++;
        else if (!valid(inputs[k])) return MG_ERR_BAD_HANDLE;
    }
    for (int32_t l = 0; l < nlayers; l++) {
        if (sizes[l] < 0 || sizes[l + 1] < 0) return MG_ERR_BAD_ARGUMENT;
        uint64_t nin = (uint64_t)sizes[l], nout = (uint64_t)sizes[l + 1];
        uint64_t per_neuron = (l == 0 ? leaves : 0) + 2 * nin + (nonlin[l] ? 1 : 0);
        nodes += per_neuron * nout; /* each term < 2**64 / 4: no overflow for int32 sizes */
        nparams += (nin + 1) * nout;
        if (nin > widest) widest = nin;
        if (nout > widest) widest = nout;
        if (nodes > A.limit) return MG_ERR_NODE_LIMIT;
    }
    for (uint64_t k = 0; k < nparams; k++)
        if (!valid(params[k])) return MG_ERR_BAD_HANDLE;
    uint32_t *x = malloc(2 * (widest ? widest : 1) * sizeof *x); /* this layer's inputs, outputs */
    if (!x) return MG_ERR_NOMEM;
    int32_t status = reserve((uint32_t)nodes);
    if (status) {
        free(x);
        return status;
    }
    uint32_t *y = x + widest;
    for (int32_t k = 0; k < sizes[0]; k++)
        x[k] = inputs[k] >= 0 ? node_of(inputs[k]) : NO_NODE;
    uint32_t first = A.len;
    for (int32_t l = 0; l < nlayers; l++) {
        int32_t nin = sizes[l];
        for (int32_t j = 0; j < sizes[l + 1]; j++) {
            y[j] = emit_neuron(nin, params, x, constants, nonlin[l]);
            params += nin + 1;
        }
        uint32_t *swap = x;
        x = y;
        y = swap;
    }
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
    free(x < y ? x : y);
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

mg_handle mg_retain(mg_handle h) { LOCKED(mg_handle, retain(h)); }
int32_t mg_release(mg_handle h) { LOCKED(int32_t, release(h)); }
void mg_release_now(mg_handle h) {
    pthread_mutex_lock(&A.lock);
    drop_handle(h);
    pthread_mutex_unlock(&A.lock);
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

static int32_t set_text(mg_handle h, int32_t kind, const char *text, size_t len) {
    if (!valid(h)) return MG_ERR_BAD_HANDLE;
    if (!text_kind(kind)) return MG_ERR_BAD_ARGUMENT;
    if (len > INT32_MAX) return MG_ERR_BAD_ARGUMENT;
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

/* ---------------------------------------------------------------- backward -------------- */

/* micrograd's backward(): root.grad = 1, then each node reachable from the root, children
 * before parents, runs its local backward.  Index order is topological, so this is one
 * downward sweep; MARK says "reachable", and the sweep stops once no marked node is left. */
static int32_t backward(mg_handle root) {
    if (!valid(root)) return MG_ERR_BAD_HANDLE;
    uint32_t i = node_of(root);
    A.grad[i] = 1.0;
    A.op[i] |= MARK;
    uint64_t pending = 1;
    for (;; i--) {
        if (A.op[i] & MARK) {
            A.op[i] &= (uint8_t)~MARK;
            pending--;
            int32_t status = propagate(i);
            if (status) { /* leave no marks behind; the grads so far stay, as in micrograd */
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

static int32_t trace(mg_handle root, int32_t capacity, mg_handle *nodes, int32_t *parent_pos) {
    if (!valid(root)) return MG_ERR_BAD_HANDLE;
    if (capacity < 0) return MG_ERR_BAD_ARGUMENT;
    /* Mark what root reaches (one downward sweep, as in backward), counting; collect the node
     * indices while they fit, then turn them into handles only if all of them did. */
    uint32_t i = node_of(root);
    A.op[i] |= MARK;
    uint64_t pending = 1;
    int64_t count = 0;
    for (;; i--) {
        if (A.op[i] & MARK) {
            A.op[i] &= (uint8_t)~MARK;
            pending--;
            if (count < capacity) nodes[count] = i;
            count++;
            uint32_t parents[2] = {A.lhs[i], visible_rhs(i)};
            for (int k = 0; k < 2; k++) {
                uint32_t p = parents[k];
                if (p != NO_NODE && !(A.op[p] & MARK)) A.op[p] |= MARK, pending++;
            }
        }
        if (!pending || i == 0) break;
    }
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
int32_t mg_local_backward(mg_handle h) { LOCKED(int32_t, local_backward(h)); }

/* ---------------------------------------------------------------- introspection --------- */

static int32_t collect(void) {
    int32_t status = compact();
    if (!status) maybe_shrink();
    return status;
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
int32_t mg_set_node_limit(int64_t limit) { LOCKED(int32_t, set_node_limit(limit)); }

int64_t mg_bytes_per_node(void) {
    return sizeof *A.data + sizeof *A.grad + sizeof *A.lhs + sizeof *A.rhs +
           sizeof *A.node_handle + sizeof *A.op;
}
