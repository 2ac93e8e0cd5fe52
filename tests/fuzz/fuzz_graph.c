/* fuzz_graph.c: a libFuzzer target over the whole of graph.h.
 *
 * The fuzzer's bytes are decoded into a sequence of graph.h calls (one entry of CALLS per call;
 * the first byte of each picks the call, the bytes after it its arguments).  Beside the arena
 * the harness keeps a model: a shadow of every node this input made, in the order it was made
 * (which is the arena's index order: compaction keeps order), with its data, grad, op, parents,
 * texts and the handle and references the harness owns.  After every call it checks that
 *   - a call given a handle the model says is not live (a released one, a next generation of a
 *     live slot, a slot never issued, a negative, fractional, NaN or too large number) refused
 *     it and changed nothing;
 *   - every handle C hands out is the node's one handle when the node has one, and otherwise a
 *     handle never issued before (its slot's generation moved on);
 *   - every held node's data, grad and op are the model's, and the live handle count is;
 *   - backward and local backward give the model's grads, computed by micrograd's formulas in
 *     the arena's order (so equal bit for bit), and the same status when a pow's backward fails;
 *   - forward recomputes the data of the op nodes a root reaches, oldest first, by the same
 *     formulas from the leaves' data, zeroes their grads, and on an op's error leaves NaN in it
 *     and every later one with the status building it gives;
 *   - reclaim_unowned sets each live handle's owner count to its appearances in the list it is
 *     given and frees exactly the handles that do not appear;
 *   - status codes are the model's: bad handles and arguments, the node limit (the model knows
 *     how many nodes are live), pow/exp range errors;
 *   - after a collection the arena holds exactly the nodes held handles reach, and the graph
 *     behind held nodes (mg_trace: nodes, order, parent positions, data, grad, op, texts) is
 *     still the model's.
 * A broken invariant prints what broke and aborts, which libFuzzer reports with the input.
 *
 * The arena is global and outlives an input: each input starts from an empty arena (it checks
 * so) and ends by releasing everything it owns and collecting, which must empty it again.
 *
 * To add a call: write a `call_...(Bytes *in)` that reads its arguments with the readers below,
 * makes the call, and updates and checks the model; append it to CALLS (appending keeps the
 * meaning of the committed corpus).
 *
 * Build and run: .ci/fuzz.sh (clang -fsanitize=fuzzer,address,undefined).
 */
#define _POSIX_C_SOURCE 200809L

#include "graph.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODES 4096     /* nodes one input may make; decoding stops short of it */
#define MAX_CALL_NODES 256 /* the most nodes one call can make (a 3-layer mg_mlp of width 5) */
#define MAX_DEAD 64        /* released handles remembered, to try them again */
#define MAX_PENDING 32     /* releases put off (MG_RELEASE_LATER) */
#define MAX_TEXT 8
#define MAX_WIDTH 5        /* mg_mlp layer sizes */
#define MAX_LAYERS 3
#define NONE (-1)
#define LIMIT_MAX INT64_C(2147483647)
#define SLOTS_TRACKED 65536 /* handle slots whose last generation the model remembers */
#define MAX_OWNED 512      /* entries of the owner list given to mg_reclaim_unowned */
#define TWO_32 4294967296.0 /* a handle is generation * 2**32 + slot */
#define TWO_53 9007199254740992.0 /* every handle is below */
#define MAX_GENERATION 0x1fffff /* 2**21 - 1: a slot that reaches it is retired */
#define DEFAULT_HEADROOM 250

/* ---------------------------------------------------------------- failures --------------- */

static const char *current_call = "(start)";

static _Noreturn void broken(int line, const char *what) {
    fprintf(stderr, "fuzz_graph.c:%d: invariant broken in %s: %s\n", line, current_call, what);
    abort();
}

#define CHECK(cond)                          \
    do {                                     \
        if (!(cond)) broken(__LINE__, #cond); \
    } while (0)

#define CHECK_INT(actual, expected)                                                     \
    do {                                                                                \
        long long actual_ = (long long)(actual), expected_ = (long long)(expected);     \
        if (actual_ != expected_) {                                                     \
            char what_[256];                                                            \
            snprintf(what_, sizeof what_, "%s is %lld, expected %lld", #actual, actual_, \
                     expected_);                                                        \
            broken(__LINE__, what_);                                                    \
        }                                                                               \
    } while (0)

/* A call's result, a handle (a double) or a status of any integer type, is the expected one:
 * compared as doubles, so that a NaN or huge handle cannot overflow an integer conversion. */
#define CHECK_RESULT(actual, expected)                                                  \
    do {                                                                                \
        double actual_ = (double)(actual), expected_ = (double)(expected);              \
        if (!(actual_ == expected_)) {                                                  \
            char what_[256];                                                            \
            snprintf(what_, sizeof what_, "%s is %.17g, expected %.17g", #actual, actual_, \
                     expected_);                                                        \
            broken(__LINE__, what_);                                                    \
        }                                                                               \
    } while (0)

/* The same double bit for bit, except that any NaN equals any NaN. */
static bool same(double a, double b) {
    if (isnan(a) && isnan(b)) return true;
    return memcmp(&a, &b, sizeof a) == 0;
}

#define CHECK_SAME(actual, expected)                                                       \
    do {                                                                                   \
        double actual_ = (actual), expected_ = (expected);                                 \
        if (!same(actual_, expected_)) {                                                   \
            char what_[256];                                                               \
            snprintf(what_, sizeof what_, "%s is %a, expected %a", #actual, actual_,       \
                     expected_);                                                           \
            broken(__LINE__, what_);                                                       \
        }                                                                                  \
    } while (0)

/* ---------------------------------------------------------------- reading the input ------ */

typedef struct {
    const uint8_t *p;
    size_t left;
} Bytes;

static uint8_t byte(Bytes *in) {
    if (!in->left) return 0;
    in->left--;
    return *in->p++;
}

/* Mostly numbers that matter to some op (signed zeros, overflow edges of exp and pow,
 * infinities, NaN, subnormals), sometimes any 8 bytes. */
static double number(Bytes *in) {
    static const double table[] = {
        0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0, 0.1, 1.5, -1.5, 4.0, 0.25, 100.0,
        -100.0, 1e-8, 1e20, 1e308, -1e308, 709.0, 710.0, -745.0, 4.9e-324, 2.2e-308, INFINITY,
        -INFINITY, NAN, 1.0 / 3.0, 1024.0, -1023.5,
    };
    uint8_t b = byte(in);
    if (b < 0xf0) return table[b % (sizeof table / sizeof *table)];
    uint64_t bits = 0;
    for (int k = 0; k < 8; k++) bits = bits << 8 | byte(in);
    double x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* ---------------------------------------------------------------- the model -------------- */

typedef struct {
    double data, grad;
    int32_t lhs, rhs; /* parents (model indices), NONE when absent; a POW's rhs is its exponent */
    uint8_t op;
    double exponent_minus_one; /* a POW's: what mg_pow was given, its backward's a ** (e - 1) */
    mg_handle handle; /* the node's handle while the harness owns references to it, else NONE */
    uint32_t refs;    /* references the harness owns (mg_release_now drops one) */
    int32_t held_at;  /* position in M.held while refs > 0 */
    uint8_t text_len[2];
    char text[2][MAX_TEXT];
} Node;

static struct {
    Node node[MAX_NODES];
    int32_t count;
    int32_t held[MAX_NODES]; /* nodes with refs > 0 */
    int32_t nheld;
    mg_handle dead[MAX_DEAD]; /* handles released to no owner: stale from then on */
    uint32_t ndead;
    mg_handle pending[MAX_PENDING]; /* releases C put off (MG_RELEASE_LATER) */
    int32_t npending;
    int64_t limit;
    int32_t mode;
    /* across inputs: the last generation issued on each slot */
    uint32_t last_generation[SLOTS_TRACKED];
    bool slot_seen[SLOTS_TRACKED];
} M;

/* Scratch for sweeps and traces (static: too big for the stack under ASan). */
static uint8_t reached[MAX_NODES];
static mg_handle trace_nodes[MAX_NODES];
static int32_t trace_pos[2 * MAX_NODES];
static int32_t trace_expected[MAX_NODES];

static int32_t push(uint8_t op, double data, int32_t lhs, int32_t rhs) {
    int32_t s = M.count++;
    M.node[s] = (Node){.data = data, .lhs = lhs, .rhs = rhs, .op = op, .handle = NONE,
                       .held_at = NONE};
    return s;
}

/* The model node a handle names, NONE when the handle is not live. */
static int32_t node_of(mg_handle h) {
    for (int32_t k = 0; k < M.nheld; k++)
        if (M.node[M.held[k]].handle == h) return M.held[k];
    return NONE;
}

/* The harness now owns one more reference to node s, which C handed out as h. */
static void adopt(int32_t s, mg_handle h) {
    Node *n = &M.node[s];
    CHECK(h >= 0);
    if (n->refs) {
        CHECK_RESULT(h, n->handle); /* one handle per node */
    } else {
        CHECK_INT(node_of(h), NONE); /* not some other node's handle */
        /* A whole number below 2**53 whose generation a slot can have. */
        CHECK(h < TWO_53 && h == (double)(uint64_t)h);
        uint32_t slot = (uint32_t)((uint64_t)h & 0xffffffff);
        uint32_t generation = (uint32_t)((uint64_t)h >> 32);
        CHECK(generation < MAX_GENERATION);
        if (slot < SLOTS_TRACKED) {
            /* A slot is reissued only after its handle was released: a newer generation. */
            if (M.slot_seen[slot]) CHECK(generation > M.last_generation[slot]);
            M.slot_seen[slot] = true;
            M.last_generation[slot] = generation;
        }
        n->handle = h;
        n->held_at = M.nheld;
        M.held[M.nheld++] = s;
    }
    n->refs++;
}

/* One reference to node s is gone (C dropped it). */
static void drop(int32_t s) {
    Node *n = &M.node[s];
    if (--n->refs) return;
    M.dead[M.ndead++ % MAX_DEAD] = n->handle;
    int32_t last = M.held[--M.nheld];
    M.held[n->held_at] = last;
    M.node[last].held_at = n->held_at;
    n->handle = NONE;
    n->held_at = NONE;
}

/* Every reference to node s is gone (C freed its handle). */
static void drop_all(int32_t s) {
    M.node[s].refs = 1;
    drop(s);
}

/* The parents a node shows (mg_parents, mg_trace): a POW's exponent is hidden. */
static int32_t visible_rhs(const Node *n) {
    return n->op == MG_POW || n->op == MG_POWI ? NONE : n->rhs;
}

/* Marks in `reached` what root reaches through visible parents (index order is topological). */
static void sweep_from(int32_t root) {
    memset(reached, 0, (size_t)root + 1);
    reached[root] = 1;
    for (int32_t i = root; i >= 0; i--) {
        if (!reached[i]) continue;
        const Node *n = &M.node[i];
        if (n->lhs != NONE) reached[n->lhs] = 1;
        if (visible_rhs(n) != NONE) reached[n->rhs] = 1;
    }
}

/* Nodes the arena must keep: what held nodes reach through any parent link. */
static int64_t live_nodes(void) {
    memset(reached, 0, (size_t)M.count);
    for (int32_t k = 0; k < M.nheld; k++) reached[M.held[k]] = 1;
    int64_t live = 0;
    for (int32_t i = M.count - 1; i >= 0; i--) {
        if (!reached[i]) continue;
        live++;
        if (M.node[i].lhs != NONE) reached[M.node[i].lhs] = 1;
        if (M.node[i].rhs != NONE) reached[M.node[i].rhs] = 1;
    }
    return live;
}

/* The status a call that makes `extra` nodes gets for room: the limit counts live nodes. */
static int32_t room_for(int64_t extra) {
    if (M.limit >= MAX_NODES) return MG_OK; /* an input never has that many */
    return live_nodes() + extra > M.limit ? MG_ERR_NODE_LIMIT : MG_OK;
}

/* ---------------------------------------------------------------- reference arithmetic --- */

/* Python's float ** float, written from the language reference and C's Annex F pow(), which
 * agrees with Python on the special cases but these: a signaling NaN, errors instead of complex
 * results, division by zero and overflow (underflow is no error). */
static int32_t ref_pow(double base, double exponent, double *out) {
    /* Python: x ** 0.0 and 1.0 ** x are 1.0 for every x, a signaling NaN too (not so pow()). */
    if (exponent == 0.0 || base == 1.0) return *out = 1.0, MG_OK;
    if (base == 0.0 && exponent < 0.0 && isfinite(exponent)) return MG_ERR_ZERO_POWER;
    if (base < 0.0 && isfinite(base) && isfinite(exponent) && exponent != nearbyint(exponent))
        return MG_ERR_COMPLEX_POWER;
    *out = pow(base, exponent);
    if (isinf(*out) && isfinite(base) && isfinite(exponent)) return MG_ERR_POW_RANGE;
    return MG_OK;
}

static int32_t ref_unary(uint8_t op, double x, double exponent, double *out) {
    switch (op) {
    case MG_POW:
    case MG_POWI: return ref_pow(x, exponent, out);
    case MG_RELU: *out = x < 0 ? 0.0 : x; return MG_OK; /* micrograd: 0 if x < 0 else x */
    case MG_TANH: *out = tanh(x); return MG_OK;
    default: /* MG_EXP: math.exp raises OverflowError for a finite x whose exp overflows */
        *out = exp(x);
        return isinf(*out) && isfinite(x) ? MG_ERR_EXP_RANGE : MG_OK;
    }
}

/* micrograd's _backward() of node i (tanh's uses out.data, as graph.h documents). */
static int32_t ref_local_backward(int32_t i) {
    Node *n = &M.node[i];
    double g = n->grad;
    Node *a = n->lhs == NONE ? NULL : &M.node[n->lhs];
    Node *b = n->rhs == NONE ? NULL : &M.node[n->rhs];
    switch (n->op) {
    case MG_ADD:
        a->grad += g;
        b->grad += g;
        return MG_OK;
    case MG_MUL:
        a->grad += b->data * g;
        b->grad += a->data * g;
        return MG_OK;
    case MG_POW:
    case MG_POWI: { /* e - 1 as mg_pow was given it (Python's float(e - 1)) */
        double e = b->data, p;
        int32_t status = ref_pow(a->data, n->exponent_minus_one, &p);
        if (status) return status;
        a->grad += (e * p) * g;
        return MG_OK;
    }
    case MG_RELU: a->grad += (double)(n->data > 0) * g; return MG_OK;
    case MG_TANH: a->grad += (1.0 - n->data * n->data) * g; return MG_OK;
    case MG_EXP: a->grad += n->data * g; return MG_OK;
    default: return MG_OK;
    }
}

/* micrograd's backward() in the arena's order: the nodes root reaches, newest first. */
static int32_t ref_backward(int32_t root) {
    M.node[root].grad = 1.0;
    sweep_from(root);
    for (int32_t i = root; i >= 0; i--) {
        if (!reached[i]) continue;
        int32_t status = ref_local_backward(i);
        if (status) return status;
    }
    return MG_OK;
}

/* Value.forward() as graph.c documents it: the op nodes root reaches, oldest first, get their
 * data again from their parents' by the formulas that built them, and a grad of 0; leaves and
 * hand-built nodes keep both.  From the first op that fails on, the reached ops hold NaN. */
static int32_t ref_forward(int32_t root) {
    sweep_from(root);
    int32_t status = MG_OK;
    for (int32_t i = 0; i <= root; i++) {
        Node *n = &M.node[i];
        if (!reached[i] || n->op == MG_LEAF || n->op == MG_CUSTOM) continue;
        n->grad = 0.0;
        double x = M.node[n->lhs].data, out = 0.0;
        if (!status) {
            switch (n->op) {
            case MG_ADD: out = x + M.node[n->rhs].data; break;
            case MG_MUL: out = x * M.node[n->rhs].data; break;
            default: status = ref_unary(n->op, x, n->rhs == NONE ? 0.0 : M.node[n->rhs].data, &out);
            }
        }
        n->data = status ? NAN : out;
    }
    return status;
}

/* ---------------------------------------------------------------- checks ----------------- */

static void check_node(int32_t s) {
    const Node *n = &M.node[s];
    CHECK_SAME(mg_data(n->handle), n->data);
    CHECK_SAME(mg_grad(n->handle), n->grad);
    CHECK_INT(mg_op(n->handle), n->op);
    for (int32_t kind = 0; kind < 2; kind++) {
        char buf[MAX_TEXT];
        CHECK_INT(mg_get_text(n->handle, kind, buf, sizeof buf), n->text_len[kind]);
        CHECK(memcmp(buf, n->text[kind], n->text_len[kind]) == 0);
    }
}

/* What must hold after every call. */
static void check_invariants(void) {
    CHECK_INT(mg_handle_count(), M.nheld);
    CHECK(mg_node_count() <= mg_capacity());
    for (int32_t k = 0; k < M.nheld; k++) {
        const Node *n = &M.node[M.held[k]];
        CHECK_SAME(mg_data(n->handle), n->data);
        CHECK_SAME(mg_grad(n->handle), n->grad);
        CHECK_INT(mg_op(n->handle), n->op);
    }
}

/* mg_trace(root, capacity) against the model: the count and, when that fits, the nodes (root
 * first, then newest to oldest), their parent positions and each node as the model has it.
 * Leaves the harness's references as they were. */
static void check_trace(int32_t root, int32_t capacity) {
    sweep_from(root);
    int32_t count = 0;
    for (int32_t i = root; i >= 0; i--)
        if (reached[i]) trace_expected[count++] = i;
    CHECK_INT(mg_trace(M.node[root].handle, capacity, trace_nodes, trace_pos), count);
    if (count > capacity) return; /* only counted: no handles were made */
    for (int32_t k = 0; k < count; k++) adopt(trace_expected[k], trace_nodes[k]);
    for (int32_t k = 0; k < count; k++) {
        const Node *n = &M.node[trace_expected[k]];
        int32_t parents[2] = {n->lhs, visible_rhs(n)};
        for (int p = 0; p < 2; p++) {
            int32_t want = NONE;
            for (int32_t j = 0; j < count && parents[p] != NONE; j++)
                if (trace_expected[j] == parents[p]) want = j;
            CHECK_INT(trace_pos[2 * k + p], want);
        }
        check_node(trace_expected[k]);
    }
    for (int32_t k = 0; k < count; k++) {
        mg_release_now(trace_nodes[k]);
        drop(trace_expected[k]);
    }
}

/* The whole graph behind root is the model's. */
static void check_graph_behind(int32_t root) { check_trace(root, MAX_NODES); }

/* ---------------------------------------------------------------- handles from the input -- */

/* A live handle of the model's, chosen by b (NONE when none is held). */
static mg_handle held_handle(uint8_t b) {
    return M.nheld ? M.node[M.held[b % M.nheld]].handle : NONE;
}

/* A handle the model says is not live, of one of several kinds. */
static mg_handle bad_handle(uint8_t b) {
    mg_handle live = held_handle(b / 16);
    switch (b % 16) {
    case 0:                                          /* stale, once one was released */
        if (M.ndead) return M.dead[(b / 16) % (M.ndead < MAX_DEAD ? M.ndead : MAX_DEAD)];
        return -1;
    case 1: return -1;
    case 2: return -TWO_53;
    case 3: return TWO_53;                           /* the first number beyond every handle */
    case 4: return MG_ERR_BAD_HANDLE;
    case 5: return live >= 0 ? live + TWO_32 : TWO_32; /* the next generation of a live slot */
    case 6: return 0xfffff0;                         /* a slot never issued */
    case 7: return (MAX_GENERATION - 1) * TWO_32;    /* slot 0, a generation never reached */
    case 8: return live >= 0 ? live + 0.5 : 0.5;     /* not a whole number */
    case 9: return live >= 0 ? nextafter(live, INFINITY) : 4.9e-324;
    case 10: return NAN;
    case 11: return INFINITY;
    case 12: return -INFINITY;
    case 13: return live >= 0 ? live + TWO_53 : 2 * TWO_53; /* a live slot, beyond 2**53 */
    case 14: return live >= 0 ? -live - 1.0 : -0.5;
    default: return MAX_GENERATION * TWO_32;         /* slot 0, the retired generation */
    }
}

/* Mostly a held handle; sometimes (and always when none is held) a bad one. */
static mg_handle pick(Bytes *in) {
    uint8_t b = byte(in);
    if (M.nheld && b < 0xe0) return held_handle(b);
    return bad_handle(byte(in));
}

/* A call the model says must fail: it returned `status`, and the call ends here (that it
 * changed nothing, the invariants after the call check). */
#define RETURN_REFUSED(result, status)    \
    do {                                  \
        CHECK_RESULT((result), (status)); \
        return;                           \
    } while (0)

/* ---------------------------------------------------------------- the calls -------------- */

static void made(int32_t s, mg_handle h) {
    adopt(s, h);
    check_node(s);
}

static void call_leaf(Bytes *in) {
    double x = number(in);
    mg_handle h = mg_leaf(x);
    int32_t expected = room_for(1);
    if (expected) RETURN_REFUSED(h, expected);
    made(push(MG_LEAF, x, NONE, NONE), h);
}

static void binary(Bytes *in, uint8_t op, bool with_constant) {
    mg_handle a = pick(in);
    mg_handle b = with_constant ? NONE : pick(in);
    double c = with_constant ? number(in) : 0.0;
    mg_handle h = op == MG_ADD ? (with_constant ? mg_add_const(a, c) : mg_add(a, b))
                               : (with_constant ? mg_mul_const(a, c) : mg_mul(a, b));
    int32_t x = node_of(a), y = with_constant ? NONE : node_of(b);
    if (x == NONE || (!with_constant && y == NONE)) RETURN_REFUSED(h, MG_ERR_BAD_HANDLE);
    int32_t expected = room_for(with_constant ? 2 : 1);
    if (expected) RETURN_REFUSED(h, expected);
    if (with_constant) y = push(MG_LEAF, c, NONE, NONE);
    double u = M.node[x].data, v = M.node[y].data;
    made(push(op, op == MG_ADD ? u + v : u * v, x, y), h);
}

static void call_add(Bytes *in) { binary(in, MG_ADD, false); }
static void call_mul(Bytes *in) { binary(in, MG_MUL, false); }
static void call_add_const(Bytes *in) { binary(in, MG_ADD, true); }
static void call_mul_const(Bytes *in) { binary(in, MG_MUL, true); }

static void unary(Bytes *in, uint8_t op) {
    mg_handle a = pick(in);
    double exponent = 0.0, exponent_minus_one = 0.0;
    bool is_pow = op == MG_POW;
    if (is_pow) {
        exponent = number(in);
        uint8_t b = byte(in);
        if (b & 1) op = MG_POWI;
        /* Mostly e - 1; sometimes another number, as Python's float(e - 1) is for an int e
         * beyond 2**53: the backward must use the one given. */
        exponent_minus_one = b & 2 ? number(in) : exponent - 1.0;
    }
    mg_handle h = is_pow ? mg_pow(a, exponent, exponent_minus_one, op == MG_POWI)
                : op == MG_RELU ? mg_relu(a)
                : op == MG_TANH ? mg_tanh(a)
                                : mg_exp(a);
    int32_t x = node_of(a);
    if (x == NONE) RETURN_REFUSED(h, MG_ERR_BAD_HANDLE);
    int32_t expected = room_for(is_pow ? 2 : 1);
    double out = 0.0;
    if (!expected) expected = ref_unary(op, M.node[x].data, exponent, &out);
    if (expected) RETURN_REFUSED(h, expected);
    int32_t e = is_pow ? push(MG_LEAF, exponent, NONE, NONE) : NONE;
    int32_t s = push(op, out, x, e);
    M.node[s].exponent_minus_one = exponent_minus_one;
    made(s, h);
    if (is_pow) CHECK_SAME(mg_exponent(h), exponent);
}

static void call_pow(Bytes *in) { unary(in, MG_POW); }
static void call_relu(Bytes *in) { unary(in, MG_RELU); }
static void call_tanh(Bytes *in) { unary(in, MG_TANH); }
static void call_exp(Bytes *in) { unary(in, MG_EXP); }

static void call_custom(Bytes *in) {
    double x = number(in);
    int32_t nparents = byte(in) % 5 - 1; /* -1..3: 0..2 are allowed */
    mg_handle parents[3] = {pick(in), pick(in), pick(in)};
    mg_handle h = mg_custom(x, nparents, parents);
    if (nparents < 0 || nparents > 2) RETURN_REFUSED(h, MG_ERR_BAD_ARGUMENT);
    int32_t p[2] = {NONE, NONE};
    for (int32_t k = 0; k < nparents; k++)
        if ((p[k] = node_of(parents[k])) == NONE) RETURN_REFUSED(h, MG_ERR_BAD_HANDLE);
    int32_t expected = room_for(1);
    if (expected) RETURN_REFUSED(h, expected);
    made(push(MG_CUSTOM, x, p[0], p[1]), h);
}

/* micrograd's neuron as mg_mlp emits it: bias + w0*x0 + w1*x1 ..., then ReLU. */
static int32_t ref_neuron(int32_t nin, const int32_t *w, const int32_t *x, const double *constants,
                          bool nonlin) {
    int32_t acc = w[nin];
    for (int32_t k = 0; k < nin; k++) {
        int32_t xk = x[k] != NONE ? x[k] : push(MG_LEAF, constants[k], NONE, NONE);
        int32_t product = push(MG_MUL, M.node[w[k]].data * M.node[xk].data, w[k], xk);
        acc = push(MG_ADD, M.node[acc].data + M.node[product].data, acc, product);
    }
    if (nonlin) acc = push(MG_RELU, M.node[acc].data < 0 ? 0.0 : M.node[acc].data, acc, NONE);
    return acc;
}

static void call_mlp(Bytes *in) {
    int32_t nlayers = byte(in) % (MAX_LAYERS + 2) - 1; /* -1..3 */
    int32_t sizes[MAX_LAYERS + 1] = {0}, nonlin[MAX_LAYERS] = {0};
    int32_t depth = nlayers > 0 ? nlayers : 0;
    for (int32_t l = 0; l <= depth; l++) {
        uint8_t b = byte(in);
        sizes[l] = b % 16 == 15 ? -1 : b % (MAX_WIDTH + 1);
    }
    for (int32_t l = 0; l < depth; l++) nonlin[l] = byte(in) & 1;
    mg_handle inputs[MAX_WIDTH];
    double constants[MAX_WIDTH] = {0};
    for (int32_t k = 0; k < sizes[0]; k++) { /* a negative input stands for constants[k] */
        uint8_t b = byte(in);
        inputs[k] = b & 1 ? (b & 2 ? -1 : -INFINITY) : pick(in);
        constants[k] = number(in);
    }
    mg_handle params[MAX_LAYERS * (MAX_WIDTH + 1) * MAX_WIDTH];
    int64_t nparams = 0;
    for (int32_t l = 0; l < depth; l++)
        if (sizes[l] >= 0 && sizes[l + 1] >= 0) nparams += (sizes[l] + 1) * sizes[l + 1];
    for (int64_t k = 0; k < nparams; k++) params[k] = pick(in);
    mg_handle out[MAX_WIDTH];
    int32_t status = mg_mlp(nlayers, sizes, nonlin, params, inputs, constants, out);

    /* The model, in mg_mlp's order of checks. */
    if (nlayers < 1) RETURN_REFUSED(status, MG_ERR_BAD_ARGUMENT);
    int32_t x[MAX_WIDTH], y[MAX_WIDTH];
    int64_t leaves = 0, nodes = 0;
    for (int32_t k = 0; k < sizes[0]; k++) {
        x[k] = inputs[k] < 0 ? NONE : node_of(inputs[k]);
        if (inputs[k] < 0) leaves++;
        else if (x[k] == NONE) RETURN_REFUSED(status, MG_ERR_BAD_HANDLE);
    }
    for (int32_t l = 0; l < nlayers; l++) {
        if (sizes[l] < 0 || sizes[l + 1] < 0) RETURN_REFUSED(status, MG_ERR_BAD_ARGUMENT);
        nodes += ((l == 0 ? leaves : 0) + 2 * sizes[l] + nonlin[l]) * sizes[l + 1];
        if (nodes > M.limit) RETURN_REFUSED(status, MG_ERR_NODE_LIMIT);
    }
    /* Room is made before the parameters are read (graph.c: a compaction moves nodes), so the
     * node limit is reported before a bad parameter. */
    int32_t expected = room_for(nodes);
    if (expected) RETURN_REFUSED(status, expected);
    int32_t w[sizeof params / sizeof *params];
    for (int64_t k = 0; k < nparams; k++)
        if ((w[k] = node_of(params[k])) == NONE) RETURN_REFUSED(status, MG_ERR_BAD_HANDLE);
    CHECK_INT(status, MG_OK);
    const int32_t *weights = w;
    int32_t *layer_in = x, *layer_out = y;
    for (int32_t l = 0; l < nlayers; l++) {
        for (int32_t j = 0; j < sizes[l + 1]; j++) {
            layer_out[j] = ref_neuron(sizes[l], weights, layer_in, constants, nonlin[l]);
            weights += sizes[l] + 1;
        }
        int32_t *swap = layer_in;
        layer_in = layer_out;
        layer_out = swap;
    }
    for (int32_t j = 0; j < sizes[nlayers]; j++) made(layer_in[j], out[j]);
}

static void call_zero_grads(Bytes *in) {
    int32_t n = byte(in) % 6 - 1; /* -1..4 */
    mg_handle handles[4];
    for (int32_t k = 0; k < 4; k++) handles[k] = pick(in);
    int32_t status = mg_zero_grads(handles, n);
    if (n < 0) RETURN_REFUSED(status, MG_ERR_BAD_ARGUMENT);
    for (int32_t k = 0; k < n; k++)
        if (node_of(handles[k]) == NONE) RETURN_REFUSED(status, MG_ERR_BAD_HANDLE);
    CHECK_INT(status, MG_OK);
    for (int32_t k = 0; k < n; k++) M.node[node_of(handles[k])].grad = 0.0;
}

static void call_retain(Bytes *in) {
    mg_handle h = pick(in);
    mg_handle result = mg_retain(h);
    int32_t s = node_of(h);
    if (s == NONE) RETURN_REFUSED(result, MG_ERR_BAD_HANDLE);
    CHECK_RESULT(result, h);
    adopt(s, h);
}

/* Releases put off while the mode was MG_RELEASE_LATER, done now (as after a gc pass). */
static void release_pending(void) {
    for (int32_t k = 0; k < M.npending; k++) {
        int32_t s = node_of(M.pending[k]);
        mg_release_now(M.pending[k]); /* one that died meanwhile is ignored, by both */
        if (s != NONE) drop(s);
    }
    M.npending = 0;
}

static void call_release(Bytes *in) {
    mg_handle h = pick(in);
    int32_t s = node_of(h);
    int32_t result = mg_release(h);
    if (M.mode == MG_RELEASE_LATER) {
        CHECK_INT(result, 1); /* put off, bad handle or not: the caller releases it later */
        if (s == NONE) return;
        if (M.npending == MAX_PENDING) release_pending();
        M.pending[M.npending++] = h;
        return;
    }
    CHECK_INT(result, 0);
    if (s != NONE) drop(s);
}

static void call_release_now(Bytes *in) {
    mg_handle h = pick(in);
    int32_t s = node_of(h);
    mg_release_now(h);
    if (s != NONE) drop(s);
}

static void call_release_pending(Bytes *in) {
    (void)in;
    release_pending();
}

/* MG_RELEASE_NEVER is final for the process, so the fuzzer never sets it. */
static void call_set_release_mode(Bytes *in) {
    static const int32_t modes[] = {MG_RELEASE_NOW, MG_RELEASE_LATER, 3, -1, INT32_MIN};
    int32_t mode = modes[byte(in) % (sizeof modes / sizeof *modes)];
    int32_t status = mg_set_release_mode(mode);
    if (mode != MG_RELEASE_NOW && mode != MG_RELEASE_LATER)
        RETURN_REFUSED(status, MG_ERR_BAD_ARGUMENT);
    CHECK_INT(status, MG_OK);
    M.mode = mode;
}

static void call_read(Bytes *in) {
    mg_handle h = pick(in);
    int32_t s = node_of(h);
    if (s == NONE) {
        CHECK(isnan(mg_data(h)) && isnan(mg_grad(h)) && isnan(mg_exponent(h)));
        RETURN_REFUSED(mg_op(h), MG_ERR_BAD_HANDLE);
    }
    const Node *n = &M.node[s];
    check_node(s);
    CHECK_SAME(mg_exponent(h), n->op == MG_POW || n->op == MG_POWI ? M.node[n->rhs].data : NAN);
}

static void set_field(Bytes *in, bool grad) {
    mg_handle h = pick(in);
    double x = number(in);
    int32_t status = grad ? mg_set_grad(h, x) : mg_set_data(h, x);
    int32_t s = node_of(h);
    if (s == NONE) RETURN_REFUSED(status, MG_ERR_BAD_HANDLE);
    CHECK_INT(status, MG_OK);
    *(grad ? &M.node[s].grad : &M.node[s].data) = x;
}

static void call_set_data(Bytes *in) { set_field(in, false); }
static void call_set_grad(Bytes *in) { set_field(in, true); }

static void call_parents(Bytes *in) {
    mg_handle h = pick(in);
    mg_handle out[2] = {NONE, NONE};
    int32_t count = mg_parents(h, out);
    int32_t s = node_of(h);
    if (s == NONE) RETURN_REFUSED(count, MG_ERR_BAD_HANDLE);
    const Node *n = &M.node[s];
    int32_t parents[2] = {n->lhs, visible_rhs(n)}, expected = 0;
    for (int k = 0; k < 2; k++)
        if (parents[k] != NONE) adopt(parents[k], out[expected++]);
    CHECK_INT(count, expected);
}

static void call_backward(Bytes *in) {
    mg_handle h = pick(in);
    int32_t status = mg_backward(h);
    int32_t s = node_of(h);
    if (s == NONE) RETURN_REFUSED(status, MG_ERR_BAD_HANDLE);
    CHECK_INT(status, ref_backward(s));
    check_graph_behind(s); /* every grad the sweep touched */
}

static void call_local_backward(Bytes *in) {
    mg_handle h = pick(in);
    int32_t status = mg_local_backward(h);
    int32_t s = node_of(h);
    if (s == NONE) RETURN_REFUSED(status, MG_ERR_BAD_HANDLE);
    CHECK_INT(status, ref_local_backward(s));
    check_graph_behind(s);
}

static void call_trace(Bytes *in) {
    mg_handle h = pick(in);
    uint8_t b = byte(in);
    /* Mostly room for all; else too little room (only the count), or a bad capacity. */
    int32_t capacity = b % 4 ? MAX_NODES : b & 4 ? -1 : b / 8;
    int32_t s = node_of(h);
    if (s == NONE) RETURN_REFUSED(mg_trace(h, capacity, trace_nodes, trace_pos), MG_ERR_BAD_HANDLE);
    if (capacity < 0) RETURN_REFUSED(mg_trace(h, capacity, trace_nodes, trace_pos), MG_ERR_BAD_ARGUMENT);
    check_trace(s, capacity);
}

static void call_collect(Bytes *in) {
    (void)in;
    CHECK_INT(mg_collect(), MG_OK);
    CHECK_INT(mg_node_count(), live_nodes()); /* exactly what held nodes reach */
    for (int32_t k = 0; k < M.nheld && k < 8; k++) check_graph_behind(M.held[k]);
}

static void call_set_text(Bytes *in) {
    static const int32_t kinds[] = {MG_TEXT_LABEL, MG_TEXT_OP, 2, -1};
    mg_handle h = pick(in);
    int32_t kind = kinds[byte(in) % 4];
    size_t len = byte(in) % (MAX_TEXT + 1);
    char text[MAX_TEXT];
    for (size_t k = 0; k < len; k++) text[k] = (char)byte(in);
    int32_t status = mg_set_text(h, kind, text, len);
    int32_t s = node_of(h);
    if (s == NONE) RETURN_REFUSED(status, MG_ERR_BAD_HANDLE);
    if (kind != MG_TEXT_LABEL && kind != MG_TEXT_OP)
        RETURN_REFUSED(status, MG_ERR_BAD_ARGUMENT);
    CHECK_INT(status, MG_OK);
    M.node[s].text_len[kind] = (uint8_t)len;
    memcpy(M.node[s].text[kind], text, len);
}

static void call_get_text(Bytes *in) {
    static const int32_t kinds[] = {MG_TEXT_LABEL, MG_TEXT_OP, 2, -1};
    mg_handle h = pick(in);
    int32_t kind = kinds[byte(in) % 4];
    size_t size = byte(in) % (MAX_TEXT + 2);
    char buf[MAX_TEXT + 2];
    memset(buf, 0x5a, sizeof buf);
    int32_t length = mg_get_text(h, kind, buf, size);
    int32_t s = node_of(h);
    if (s == NONE) RETURN_REFUSED(length, MG_ERR_BAD_HANDLE);
    if (kind != MG_TEXT_LABEL && kind != MG_TEXT_OP)
        RETURN_REFUSED(length, MG_ERR_BAD_ARGUMENT);
    const Node *n = &M.node[s];
    CHECK_INT(length, n->text_len[kind]);
    size_t written = (size_t)length <= size ? (size_t)length : 0; /* all of it or nothing */
    CHECK(memcmp(buf, n->text[kind], written) == 0);
    for (size_t k = written; k < sizeof buf; k++) CHECK(buf[k] == 0x5a);
}

static void call_set_node_limit(Bytes *in) {
    static const int64_t limits[] = {1, 2, 3, 5, 8, 13, 21, 40, 100, 300, 1000, LIMIT_MAX,
                                     0, -1, LIMIT_MAX + 1, INT64_MIN};
    int64_t limit = limits[byte(in) % (sizeof limits / sizeof *limits)];
    int32_t status = mg_set_node_limit(limit);
    if (limit < 1 || limit > LIMIT_MAX) RETURN_REFUSED(status, MG_ERR_BAD_ARGUMENT);
    CHECK_INT(status, MG_OK);
    M.limit = limit;
}

/* The arena's counters: consistent with each other, and never going back. */
static void call_introspect(Bytes *in) {
    (void)in;
    static int64_t compactions, resizes, reclaim_ns; /* across inputs, as the arena's */
    int64_t now_compactions = mg_compactions(), now_resizes = mg_arena_resizes();
    int64_t now_reclaim_ns = mg_reclaim_nanoseconds();
    CHECK(now_compactions >= compactions && now_resizes >= resizes && now_reclaim_ns >= reclaim_ns);
    compactions = now_compactions, resizes = now_resizes, reclaim_ns = now_reclaim_ns;
    CHECK(mg_bytes_per_node() > 0);
    CHECK(mg_arena_bytes() >= mg_capacity() * mg_bytes_per_node());
    CHECK(mg_node_count() >= live_nodes());
}

static void call_set_headroom(Bytes *in) {
    static const int32_t percents[] = {150, 151, 250, 400, 1000, 149, 1001, 0, -1, INT32_MIN};
    int32_t percent = percents[byte(in) % (sizeof percents / sizeof *percents)];
    int32_t status = mg_set_headroom(percent);
    if (percent < 150 || percent > 1000) RETURN_REFUSED(status, MG_ERR_BAD_ARGUMENT);
    CHECK_INT(status, MG_OK);
}

static void call_forward(Bytes *in) {
    mg_handle h = pick(in);
    int32_t status = mg_forward(h);
    int32_t s = node_of(h);
    if (s == NONE) RETURN_REFUSED(status, MG_ERR_BAD_HANDLE);
    CHECK_INT(status, ref_forward(s));
    check_graph_behind(s); /* every node forward recomputed */
}

/* mg_reclaim_unowned with a list of owners made from the model's: each held node's handle
 * listed as many times as the harness owns it, or fewer (down to none: freed), or more, with
 * bad handles mixed in (they own nothing), or a negative count. */
static void call_reclaim_unowned(Bytes *in) {
    static mg_handle owned[MAX_OWNED];
    static uint32_t owners[MAX_NODES];
    uint8_t how = byte(in);
    int64_t n = 0;
    for (int32_t k = 0; k < M.nheld; k++) {
        const Node *node = &M.node[M.held[k]];
        uint32_t copies = node->refs;
        if (how & 1) { /* each held node's count from the input: 0..refs+1 */
            uint8_t b = byte(in);
            copies = b < 0x80 ? node->refs : (uint32_t)(b % (node->refs + 2));
        }
        for (uint32_t c = 0; c < copies && n < MAX_OWNED; c++) owned[n++] = node->handle;
    }
    if (how & 2)
        for (int32_t k = byte(in) % 4; k > 0 && n < MAX_OWNED; k--) owned[n++] = bad_handle(byte(in));
    for (int64_t k = n - 1; k > 0 && (how & 4); k--) { /* shuffled: order must not matter */
        int64_t j = byte(in) % (k + 1);
        mg_handle t = owned[k];
        owned[k] = owned[j];
        owned[j] = t;
    }
    int64_t given = how % 32 == 31 ? -1 : n;
    int64_t freed = mg_reclaim_unowned(owned, given);
    if (given < 0) RETURN_REFUSED(freed, MG_ERR_BAD_ARGUMENT);

    for (int32_t k = 0; k < M.nheld; k++) owners[M.held[k]] = 0;
    for (int64_t k = 0; k < n; k++) {
        int32_t s = node_of(owned[k]);
        if (s != NONE) owners[s]++;
    }
    static int32_t gone[MAX_NODES];
    int32_t ngone = 0;
    for (int32_t k = 0; k < M.nheld; k++) {
        int32_t s = M.held[k];
        if (owners[s]) M.node[s].refs = owners[s];
        else gone[ngone++] = s;
    }
    CHECK_INT(freed, ngone);
    for (int32_t k = 0; k < ngone; k++) {
        mg_handle h = M.node[gone[k]].handle;
        drop_all(gone[k]);
        CHECK(isnan(mg_data(h))); /* stale from now on */
    }
}

typedef struct {
    const char *name;
    void (*run)(Bytes *in);
} Call;

/* The first byte of a call picks its entry (modulo the count).  Append new calls at the end. */
static const Call CALLS[] = {
    {"mg_leaf", call_leaf},
    {"mg_add", call_add},
    {"mg_mul", call_mul},
    {"mg_add_const", call_add_const},
    {"mg_mul_const", call_mul_const},
    {"mg_pow", call_pow},
    {"mg_relu", call_relu},
    {"mg_tanh", call_tanh},
    {"mg_exp", call_exp},
    {"mg_custom", call_custom},
    {"mg_mlp", call_mlp},
    {"mg_zero_grads", call_zero_grads},
    {"mg_retain", call_retain},
    {"mg_release", call_release},
    {"mg_release_now", call_release_now},
    {"mg_release_now (put-off releases)", call_release_pending},
    {"mg_set_release_mode", call_set_release_mode},
    {"mg_data/mg_grad/mg_op/mg_exponent/mg_get_text", call_read},
    {"mg_set_data", call_set_data},
    {"mg_set_grad", call_set_grad},
    {"mg_parents", call_parents},
    {"mg_backward", call_backward},
    {"mg_local_backward", call_local_backward},
    {"mg_trace", call_trace},
    {"mg_collect", call_collect},
    {"mg_set_text", call_set_text},
    {"mg_get_text", call_get_text},
    {"mg_set_node_limit", call_set_node_limit},
    {"mg_compactions/mg_arena_resizes/mg_reclaim_nanoseconds/mg_arena_bytes", call_introspect},
    {"mg_forward", call_forward},
    {"mg_reclaim_unowned", call_reclaim_unowned},
    {"mg_set_headroom", call_set_headroom},
};

#define NCALLS ((uint8_t)(sizeof CALLS / sizeof *CALLS))

/* ---------------------------------------------------------------- one input -------------- */

/* Gives back everything this input owns; the arena must then be empty. */
static void finish(void) {
    current_call = "(end of input: releasing everything)";
    CHECK_INT(mg_set_release_mode(MG_RELEASE_NOW), MG_OK);
    M.mode = MG_RELEASE_NOW;
    release_pending();
    while (M.nheld) {
        int32_t s = M.held[M.nheld - 1];
        mg_release(M.node[s].handle);
        drop(s);
    }
    CHECK_INT(mg_handle_count(), 0);
    CHECK_INT(mg_collect(), MG_OK);
    CHECK_INT(mg_node_count(), 0);
    CHECK_INT(mg_set_node_limit(LIMIT_MAX), MG_OK);
    CHECK_INT(mg_set_headroom(DEFAULT_HEADROOM), MG_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    current_call = "(start of input)";
    CHECK_INT(mg_handle_count(), 0); /* the input before gave everything back */
    CHECK_INT(mg_node_count(), 0);
    M.count = M.nheld = M.npending = 0;
    M.ndead = 0;
    M.limit = LIMIT_MAX;
    M.mode = MG_RELEASE_NOW;

    Bytes in = {data, size};
    while (in.left && M.count <= MAX_NODES - MAX_CALL_NODES) {
        const Call *call = &CALLS[byte(&in) % NCALLS];
        current_call = call->name;
        call->run(&in);
        check_invariants();
    }
    finish();
    return 0;
}
