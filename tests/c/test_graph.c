/* test_graph.c: the C graph core driven through its public header alone.
 *
 * Build and run with tests/c/run.sh (gcc with AddressSanitizer and UBSan).  Each test starts
 * from an empty arena and must end with one: the runner checks that no handle is left held and
 * that mg_collect() then leaves no node, so every test is also a handle-leak check.  Prints one
 * line per failed check and a closing "N passed, M failed"; exits non-zero on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include "graph.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODE_LIMIT INT64_C(2147483647)
#define COUNT(array) ((int32_t)(sizeof(array) / sizeof *(array)))

/* ---------------------------------------------------------------- checks ---------------- */

static const char *current_test;
static int failed_checks;

static void fail(int line, const char *what) {
    fprintf(stderr, "test_graph.c:%d: %s: %s\n", line, current_test, what);
    failed_checks++;
}

static void fail_int(int line, const char *expr, long long actual, long long expected) {
    char what[512];
    snprintf(what, sizeof what, "%s is %lld, expected %lld", expr, actual, expected);
    fail(line, what);
}

static void fail_double(int line, const char *expr, double actual, double expected) {
    char what[512];
    snprintf(what, sizeof what, "%s is %.17g, expected %.17g", expr, actual, expected);
    fail(line, what);
}

/* The same double, bit for bit (so NaN equals NaN and -0.0 differs from 0.0). */
static bool same_double(double a, double b) { return memcmp(&a, &b, sizeof a) == 0; }

#define CHECK(cond)                         \
    do {                                    \
        if (!(cond)) fail(__LINE__, #cond); \
    } while (0)

#define CHECK_INT(actual, expected)                                                \
    do {                                                                           \
        long long actual_ = (long long)(actual);                                   \
        long long expected_ = (long long)(expected);                               \
        if (actual_ != expected_) fail_int(__LINE__, #actual, actual_, expected_); \
    } while (0)

#define CHECK_DOUBLE(actual, expected)                          \
    do {                                                        \
        double actual_ = (actual), expected_ = (expected);      \
        if (!same_double(actual_, expected_))                   \
            fail_double(__LINE__, #actual, actual_, expected_); \
    } while (0)

#define CHECK_CLOSE(actual, expected, rel)                           \
    do {                                                             \
        double actual_ = (actual), expected_ = (expected);           \
        if (!(fabs(actual_ - expected_) <= (rel) * fabs(expected_))) \
            fail_double(__LINE__, #actual, actual_, expected_);      \
    } while (0)

/* A maker call that must fail with `status`; should it make a node instead, the node is
 * released so that one failure does not cascade into the checks after it. */
#define CHECK_FAILS(call, status)                                        \
    do {                                                                 \
        mg_handle got_ = (call);                                           \
        if (got_ >= 0) mg_release(got_);                                 \
        if (got_ != (status)) fail_int(__LINE__, #call, got_, (status)); \
    } while (0)

/* A call that must make a node: its handle, or a failed check and a fresh leaf to go on with. */
#define MAKE(call) made(__LINE__, #call, (call))

static mg_handle made(int line, const char *call, mg_handle h) {
    if (h >= 0) return h;
    fail_int(line, call, h, 0);
    return mg_leaf(NAN);
}

static void release_all(const mg_handle *handles, int32_t n) {
    for (int32_t k = 0; k < n; k++) mg_release(handles[k]);
}

/* The node's parents (0..2) as new handles; the caller releases them. */
static int32_t parents(mg_handle h, mg_handle out[2]) {
    out[0] = out[1] = -1;
    return mg_parents(h, out);
}

/* A small deterministic generator for weights in [-1, 1). */
static double uniform(uint32_t *state) {
    *state = *state * 1664525u + 1013904223u;
    return (double)(*state >> 8) / (double)(1u << 23) - 1.0;
}

/* ---------------------------------------------------------------- leaves, each op -------- */

static void test_leaf(void) {
    mg_handle a = MAKE(mg_leaf(2.5));
    CHECK_INT(mg_handle_count(), 1);
    CHECK_INT(mg_node_count(), 1);
    CHECK_DOUBLE(mg_data(a), 2.5);
    CHECK_DOUBLE(mg_grad(a), 0.0);
    CHECK_INT(mg_op(a), MG_LEAF);
    CHECK(isnan(mg_exponent(a)));
    mg_handle p[2];
    CHECK_INT(parents(a, p), 0);
    CHECK_INT(mg_set_data(a, -1.25), MG_OK);
    CHECK_INT(mg_set_grad(a, 3.0), MG_OK);
    CHECK_DOUBLE(mg_data(a), -1.25);
    CHECK_DOUBLE(mg_grad(a), 3.0);
    CHECK_INT(mg_bytes_per_node(), 29);
    /* NaN, infinities and -0.0 are stored as they are. */
    mg_handle odd[] = {MAKE(mg_leaf(NAN)), MAKE(mg_leaf(-INFINITY)), MAKE(mg_leaf(-0.0))};
    CHECK(isnan(mg_data(odd[0])));
    CHECK_DOUBLE(mg_data(odd[1]), -INFINITY);
    CHECK_DOUBLE(mg_data(odd[2]), -0.0);
    release_all(odd, COUNT(odd));
    mg_release(a);
    CHECK_INT(mg_handle_count(), 0);
}

/* `out` made from x (and y) by one op: its data, op code, the parents it shows, and after
 * backward(out) the grads of x and y. */
static void check_op(int line, mg_handle out, mg_handle op, double data, mg_handle x, double x_grad,
                     mg_handle y, double y_grad) {
    char what[128];
    snprintf(what, sizeof what, "op %d made at line %d", (int)op, line);
    const char *saved = current_test;
    current_test = what;
    CHECK_INT(mg_op(out), op);
    CHECK_DOUBLE(mg_data(out), data);
    mg_handle p[2];
    int32_t n = parents(out, p);
    CHECK_INT(n, y >= 0 ? 2 : 1);
    CHECK(n >= 1 && p[0] == x); /* one handle per node: == is identity */
    if (y >= 0) CHECK(n == 2 && p[1] == y);
    release_all(p, n > 0 ? n : 0);
    CHECK_INT(mg_backward(out), MG_OK);
    CHECK_DOUBLE(mg_grad(out), 1.0);
    CHECK_DOUBLE(mg_grad(x), x_grad);
    if (y >= 0) CHECK_DOUBLE(mg_grad(y), y_grad);
    current_test = saved;
}

static void test_each_op(void) {
    mg_handle a = MAKE(mg_leaf(2.0)), b = MAKE(mg_leaf(3.0)), m = MAKE(mg_leaf(-1.0));
    mg_handle out[16];
    int32_t n = 0;

    out[n] = MAKE(mg_add(a, b));
    check_op(__LINE__, out[n++], MG_ADD, 5.0, a, 1.0, b, 1.0);
    out[n] = MAKE(mg_mul(a, b)); /* grads accumulate: micrograd never zeroes them */
    check_op(__LINE__, out[n++], MG_MUL, 6.0, a, 1.0 + 3.0, b, 1.0 + 2.0);
    mg_set_grad(a, 0.0), mg_set_grad(b, 0.0);
    out[n] = MAKE(mg_add(a, a)); /* one node on both sides: both contributions land */
    check_op(__LINE__, out[n++], MG_ADD, 4.0, a, 2.0, a, 2.0);
    mg_set_grad(a, 0.0);

    /* a + 4.0 and a * -1.0 make a real leaf for the number, shown as the second parent. */
    out[n] = MAKE(mg_add_const(a, 4.0));
    mg_handle p[2];
    CHECK_INT(parents(out[n], p), 2);
    CHECK_DOUBLE(mg_data(p[1]), 4.0);
    CHECK_INT(mg_op(p[1]), MG_LEAF);
    check_op(__LINE__, out[n++], MG_ADD, 6.0, a, 1.0, p[1], 1.0);
    release_all(p, 2);
    mg_set_grad(a, 0.0);
    out[n] = MAKE(mg_mul_const(a, -1.0));
    CHECK_INT(parents(out[n], p), 2);
    CHECK_DOUBLE(mg_data(p[1]), -1.0);
    check_op(__LINE__, out[n++], MG_MUL, -2.0, a, -1.0, p[1], 2.0);
    release_all(p, 2);
    mg_set_grad(a, 0.0);

    /* a ** 3 (a Python int exponent) and a ** 0.5: one visible parent, the exponent hidden. */
    out[n] = MAKE(mg_pow(a, 3.0, 3.0 - 1.0, 1));
    check_op(__LINE__, out[n], MG_POWI, 8.0, a, 12.0, -1, 0.0);
    CHECK_DOUBLE(mg_exponent(out[n++]), 3.0);
    mg_set_grad(a, 0.0);
    out[n] = MAKE(mg_pow(a, 0.5, 0.5 - 1.0, 0));
    check_op(__LINE__, out[n], MG_POW, 1.4142135623730951, a, 0.3535533905932738, -1, 0.0);
    CHECK_DOUBLE(mg_exponent(out[n++]), 0.5);
    mg_set_grad(a, 0.0);
    out[n] = MAKE(mg_pow(m, 3.0, 3.0 - 1.0, 0)); /* a negative base with a whole float exponent is real */
    check_op(__LINE__, out[n++], MG_POW, -1.0, m, 3.0, -1, 0.0);
    mg_set_grad(m, 0.0);

    /* relu: 0 if x < 0 else x, and its grad (out > 0) * grad. */
    out[n] = MAKE(mg_relu(m));
    check_op(__LINE__, out[n++], MG_RELU, 0.0, m, 0.0, -1, 0.0);
    out[n] = MAKE(mg_relu(a));
    check_op(__LINE__, out[n++], MG_RELU, 2.0, a, 1.0, -1, 0.0);
    mg_set_grad(a, 0.0);
    mg_handle z = MAKE(mg_leaf(-0.0));
    out[n] = MAKE(mg_relu(z)); /* -0.0 < 0 is false, so micrograd passes -0.0 through */
    check_op(__LINE__, out[n++], MG_RELU, -0.0, z, 0.0, -1, 0.0);
    mg_release(z);

    mg_handle h = MAKE(mg_leaf(0.5));
    out[n] = MAKE(mg_tanh(h));
    check_op(__LINE__, out[n++], MG_TANH, 0.46211715726000974, h,
             1.0 - 0.46211715726000974 * 0.46211715726000974, -1, 0.0);
    mg_set_grad(h, 0.0);
    mg_set_data(h, 1.0);
    out[n] = MAKE(mg_exp(h));
    check_op(__LINE__, out[n++], MG_EXP, 2.718281828459045, h, 2.718281828459045, -1, 0.0);
    mg_release(h);

    /* Underflow is not an error, as in Python: 10.0 ** -400 == 0.0, math.exp(-1000) == 0.0. */
    mg_handle ten = MAKE(mg_leaf(10.0)), big = MAKE(mg_leaf(-1000.0));
    out[n] = MAKE(mg_pow(ten, -400.0, -400.0 - 1.0, 1));
    CHECK_DOUBLE(mg_data(out[n++]), 0.0);
    out[n] = MAKE(mg_exp(big));
    CHECK_DOUBLE(mg_data(out[n++]), 0.0);
    release_all(out, n);
    mg_release(ten), mg_release(big);
    mg_release(a), mg_release(b), mg_release(m);
}

/* The errors Python's float arithmetic raises are status codes, and a failed op makes nothing. */
static void test_op_errors(void) {
    mg_handle zero = MAKE(mg_leaf(0.0)), ten = MAKE(mg_leaf(10.0)), minus8 = MAKE(mg_leaf(-8.0));
    mg_handle big = MAKE(mg_leaf(1000.0));
    int64_t nodes = mg_node_count(), handles = mg_handle_count();
    CHECK_INT(mg_pow(zero, -1.0, -1.0 - 1.0, 1), MG_ERR_ZERO_POWER);  /* 0.0 ** -1 */
    CHECK_INT(mg_pow(zero, -0.5, -0.5 - 1.0, 0), MG_ERR_ZERO_POWER);  /* 0.0 ** -0.5 */
    CHECK_INT(mg_pow(ten, 400.0, 400.0 - 1.0, 1), MG_ERR_POW_RANGE);   /* 10.0 ** 400 */
    CHECK_INT(mg_pow(minus8, 1.0 / 3.0, 1.0 / 3.0 - 1.0, 0), MG_ERR_COMPLEX_POWER); /* (-8.0) ** (1/3) */
    CHECK_INT(mg_exp(big), MG_ERR_EXP_RANGE);             /* math.exp(1000.0) */
    CHECK_INT(mg_node_count(), nodes);
    CHECK_INT(mg_handle_count(), handles);
    /* The arena is fine afterwards. */
    mg_handle ok = MAKE(mg_pow(ten, 2.0, 2.0 - 1.0, 1));
    CHECK_DOUBLE(mg_data(ok), 100.0);
    mg_release(ok);
    mg_release(zero), mg_release(ten), mg_release(minus8), mg_release(big);
}

/* A backward pass that fails part way (0.0 ** 0.5 is fine forward, its grad is 0.0 ** -0.5)
 * keeps the grads made so far, as micrograd's interrupted loop does, and leaves no stale state:
 * a later sweep through the same nodes is exact. */
static void test_backward_error(void) {
    mg_handle p = MAKE(mg_leaf(3.0));
    mg_handle q = MAKE(mg_mul(p, p)); /* below the failing node, pending when it fails */
    mg_handle x = MAKE(mg_leaf(0.0));
    mg_handle y = MAKE(mg_pow(x, 0.5, 0.5 - 1.0, 0));
    mg_handle z = MAKE(mg_add(y, q));
    CHECK_INT(mg_backward(z), MG_ERR_ZERO_POWER);
    CHECK_DOUBLE(mg_grad(z), 1.0);
    CHECK_DOUBLE(mg_grad(y), 1.0);
    CHECK_DOUBLE(mg_grad(q), 1.0);
    CHECK_DOUBLE(mg_grad(p), 0.0); /* q's step never ran */
    CHECK_INT(mg_op(q), MG_MUL);
    /* r = p + w sweeps down through q: had q kept its "reached" mark, it would add 6 to p. */
    mg_handle w = MAKE(mg_leaf(1.0));
    mg_handle r = MAKE(mg_add(p, w));
    CHECK_INT(mg_backward(r), MG_OK);
    CHECK_DOUBLE(mg_grad(p), 1.0);
    CHECK_DOUBLE(mg_grad(q), 1.0);
    CHECK_INT(mg_local_backward(y), MG_ERR_ZERO_POWER);
    mg_handle all[] = {p, q, x, y, z, w, r};
    release_all(all, COUNT(all));
}

/* mg_local_backward is one node's _backward(); a hand-built node (mg_custom) has none. */
static void test_local_backward_and_custom(void) {
    mg_handle a = MAKE(mg_leaf(2.0)), b = MAKE(mg_leaf(-3.0));
    mg_handle c = MAKE(mg_mul(a, b));
    mg_set_grad(c, 2.0);
    CHECK_INT(mg_local_backward(c), MG_OK);
    CHECK_DOUBLE(mg_grad(a), -6.0);
    CHECK_DOUBLE(mg_grad(b), 4.0);
    CHECK_INT(mg_local_backward(a), MG_OK); /* a leaf's step does nothing */
    CHECK_DOUBLE(mg_grad(a), -6.0);

    mg_handle pair[] = {a, b};
    mg_handle k = MAKE(mg_custom(7.0, 2, pair));
    CHECK_INT(mg_op(k), MG_CUSTOM);
    CHECK_DOUBLE(mg_data(k), 7.0);
    mg_handle p[2];
    CHECK_INT(parents(k, p), 2);
    CHECK(p[0] == a && p[1] == b);
    release_all(p, 2);
    CHECK_INT(mg_backward(k), MG_OK);
    CHECK_DOUBLE(mg_grad(k), 1.0);
    CHECK_DOUBLE(mg_grad(a), -6.0);
    mg_handle k0 = MAKE(mg_custom(1.0, 0, NULL));
    CHECK_INT(parents(k0, p), 0);
    mg_handle k1 = MAKE(mg_custom(1.0, 1, pair));
    CHECK_INT(parents(k1, p), 1);
    mg_release(p[0]);
    mg_handle three[] = {a, b, c};
    int64_t nodes = mg_node_count();
    CHECK_INT(mg_custom(1.0, 3, three), MG_ERR_BAD_ARGUMENT);
    CHECK_INT(mg_custom(1.0, -1, three), MG_ERR_BAD_ARGUMENT);
    CHECK_INT(mg_node_count(), nodes);

    mg_handle zs[] = {a, b, c};
    CHECK_INT(mg_zero_grads(zs, 3), MG_OK);
    CHECK_DOUBLE(mg_grad(a), 0.0);
    CHECK_DOUBLE(mg_grad(c), 0.0);
    CHECK_DOUBLE(mg_grad(k), 1.0);
    CHECK_INT(mg_zero_grads(zs, 0), MG_OK);
    CHECK_INT(mg_zero_grads(zs, -1), MG_ERR_BAD_ARGUMENT);
    mg_handle all[] = {a, b, c, k, k0, k1};
    release_all(all, COUNT(all));
}

/* Handles are refcounted: one node has one handle however many owners it has. */
static void test_retain_release(void) {
    mg_handle a = MAKE(mg_leaf(1.0));
    CHECK_INT(mg_retain(a), a);
    CHECK_INT(mg_retain(a), a);
    mg_release(a);
    mg_release(a);
    CHECK_DOUBLE(mg_data(a), 1.0);
    CHECK_INT(mg_handle_count(), 1);
    mg_handle b = MAKE(mg_mul_const(a, 2.0));
    mg_handle p[2];
    CHECK_INT(parents(b, p), 2);
    CHECK_INT(p[0], a); /* the node's existing handle, one more owner */
    CHECK_INT(mg_handle_count(), 3); /* a, b and the hidden 2.0 leaf now named by p[1] */
    mg_release(p[0]);
    mg_release(p[1]);
    CHECK_INT(mg_handle_count(), 2);
    mg_release(a);
    CHECK(isnan(mg_data(a)));
    mg_release(a); /* a second release of a dead handle changes nothing */
    CHECK_INT(mg_handle_count(), 1);
    CHECK_DOUBLE(mg_data(b), 2.0);
    mg_release(b);
}

/* ---------------------------------------------------------------- graphs ---------------- */

/* Snapshot of everything a root reaches, through mg_trace: op, data, grad, parent positions. */
typedef struct {
    int32_t n;
    int32_t op[256], pos[512];
    double data[256], grad[256];
} Snapshot;

static void snapshot(mg_handle root, Snapshot *s) {
    mg_handle nodes[256];
    s->n = mg_trace(root, 256, nodes, s->pos);
    CHECK(s->n > 0 && s->n <= 256);
    for (int32_t k = 0; k < s->n && k < 256; k++) {
        s->op[k] = mg_op(nodes[k]);
        s->data[k] = mg_data(nodes[k]);
        s->grad[k] = mg_grad(nodes[k]);
    }
    if (s->n > 0 && s->n <= 256) release_all(nodes, s->n);
}

static void check_same_snapshot(const Snapshot *a, const Snapshot *b) {
    CHECK_INT(b->n, a->n);
    for (int32_t k = 0; k < a->n && k < b->n && k < 256; k++) {
        CHECK_INT(b->op[k], a->op[k]);
        CHECK_DOUBLE(b->data[k], a->data[k]);
        CHECK_DOUBLE(b->grad[k], a->grad[k]);
        CHECK_INT(b->pos[2 * k], a->pos[2 * k]);
        CHECK_INT(b->pos[2 * k + 1], a->pos[2 * k + 1]);
    }
}

/* Zeroes the grad of everything root reaches (micrograd's grads otherwise accumulate). */
static void zero_history(mg_handle root) {
    mg_handle nodes[256];
    int32_t pos[512];
    int32_t n = mg_trace(root, 256, nodes, pos);
    CHECK(n > 0 && n <= 256);
    if (n <= 0 || n > 256) return;
    CHECK_INT(mg_zero_grads(nodes, n), MG_OK);
    release_all(nodes, n);
}

static mg_handle kept[64];
static int32_t nkept;

/* Remembers a handle to release later. */
static mg_handle keep(mg_handle h) {
    if (nkept < COUNT(kept)) kept[nkept++] = h;
    return h;
}

/* micrograd's README example, composed from the C calls as Value composes it, in Python's
 * left-to-right order: -x is x * -1.0, x - y is x + (-y), x / 2.0 is x * 0.5, 10.0 / f is
 * (f ** -1) * 10.0, 1 + c is c + 1.0, 3 * d is d * 3.0. */
static void test_readme_example(void) {
    nkept = 0;
#define KEEP(call) keep(MAKE(call))
    mg_handle a = KEEP(mg_leaf(-4.0)), b = KEEP(mg_leaf(2.0));
    mg_handle c = KEEP(mg_add(a, b));                          /* c = a + b */
    mg_handle ab = KEEP(mg_mul(a, b));                         /* d = a * b + b**3 */
    mg_handle d = KEEP(mg_add(ab, KEEP(mg_pow(b, 3.0, 3.0 - 1.0, 1))));
    mg_handle t = KEEP(mg_add_const(c, 1.0));                  /* c += c + 1 */
    c = KEEP(mg_add(c, t));
    t = KEEP(mg_add_const(c, 1.0));                          /* c += 1 + c + (-a) */
    t = KEEP(mg_add(t, KEEP(mg_mul_const(a, -1.0))));
    c = KEEP(mg_add(c, t));
    t = KEEP(mg_mul_const(d, 2.0));                          /* d += d * 2 + (b + a).relu() */
    t = KEEP(mg_add(t, KEEP(mg_relu(KEEP(mg_add(b, a))))));
    d = KEEP(mg_add(d, t));
    t = KEEP(mg_mul_const(d, 3.0));                          /* d += 3 * d + (b - a).relu() */
    mg_handle b_minus_a = KEEP(mg_add(b, KEEP(mg_mul_const(a, -1.0))));
    t = KEEP(mg_add(t, KEEP(mg_relu(b_minus_a))));
    d = KEEP(mg_add(d, t));
    mg_handle e = KEEP(mg_add(c, KEEP(mg_mul_const(d, -1.0)))); /* e = c - d */
    mg_handle f = KEEP(mg_pow(e, 2.0, 2.0 - 1.0, 1));                      /* f = e**2 */
    mg_handle g = KEEP(mg_mul_const(f, 0.5));                   /* g = f / 2.0 */
    t = KEEP(mg_mul_const(KEEP(mg_pow(f, -1.0, -1.0 - 1.0, 1)), 10.0));  /* g += 10.0 / f */
    g = KEEP(mg_add(g, t));
#undef KEEP
    CHECK_DOUBLE(mg_data(g), 24.70408163265306);
    CHECK_INT(mg_backward(g), MG_OK);
    double a_grad = mg_grad(a), b_grad = mg_grad(b);
    CHECK_CLOSE(a_grad, 138.83381924198252, 1e-14); /* up to summation order */
    CHECK_CLOSE(b_grad, 645.5772594752187, 1e-14);
    /* Dropping every other handle changes nothing: g holds its history. */
    for (int32_t k = 0; k < nkept; k++)
        if (kept[k] != a && kept[k] != b && kept[k] != g) mg_release(kept[k]);
    CHECK_INT(mg_collect(), MG_OK);
    zero_history(g);
    CHECK_INT(mg_backward(g), MG_OK);
    CHECK_DOUBLE(mg_grad(a), a_grad);
    CHECK_DOUBLE(mg_grad(b), b_grad);
    mg_release(a), mg_release(b), mg_release(g);
}

/* Shared subexpressions, exact integer gradients: y = x*x, z = y + x, w = z*y at x = 3. */
static void test_shared_dag(void) {
    mg_handle x = MAKE(mg_leaf(3.0));
    mg_handle stale = MAKE(mg_leaf(5.0));
    mg_handle unrelated = MAKE(mg_mul(stale, x)); /* below w in the arena, not reached from it */
    mg_set_grad(unrelated, 100.0);
    mg_handle y = MAKE(mg_mul(x, x));
    mg_handle z = MAKE(mg_add(y, x));
    mg_handle w = MAKE(mg_mul(z, y));
    CHECK_DOUBLE(mg_data(w), 108.0);
    CHECK_INT(mg_backward(w), MG_OK);
    CHECK_DOUBLE(mg_grad(w), 1.0);
    CHECK_DOUBLE(mg_grad(z), 9.0);         /* y */
    CHECK_DOUBLE(mg_grad(y), 12.0 + 9.0);  /* z + y * dz/dy */
    CHECK_DOUBLE(mg_grad(x), 135.0);       /* y*(2x + 1) + z*2x */
    CHECK_DOUBLE(mg_grad(stale), 0.0);     /* a node the root does not reach is not swept */
    CHECK_DOUBLE(mg_grad(unrelated), 100.0);
    mg_handle all[] = {x, y, z, w, stale, unrelated};
    release_all(all, COUNT(all));
}

/* backward on a 1,000,000-deep chain: y = x + x + ... + x, so x.grad = 1,000,001. */
static void test_deep_chain_backward(void) {
    enum { DEPTH = 1000000 };
    mg_handle x = MAKE(mg_leaf(0.5));
    mg_handle y = MAKE(mg_retain(x));
    for (int32_t k = 0; k < DEPTH; k++) {
        mg_handle next = MAKE(mg_add(y, x));
        mg_release(y);
        y = next;
    }
    CHECK_INT(mg_node_count(), DEPTH + 1);
    CHECK_DOUBLE(mg_data(y), 0.5 * (DEPTH + 1));
    CHECK_INT(mg_backward(y), MG_OK);
    CHECK_DOUBLE(mg_grad(x), DEPTH + 1.0);
    mg_release(y), mg_release(x);
}

/* ---------------------------------------------------------------- forward --------------- */

/* Every op on leaves a, b, c (and a hand-built node, which keeps its data): writes the nodes to
 * out (the root last) and returns how many. */
enum { PROGRAM_NODES = 16 };
static int32_t program(mg_handle a, mg_handle b, mg_handle c, mg_handle out[PROGRAM_NODES]) {
    mg_handle pair[] = {a, b};
    mg_handle ab = out[0] = MAKE(mg_mul(a, b));
    mg_handle ab1 = out[1] = MAKE(mg_add_const(ab, 1.5));
    mg_handle square = out[2] = MAKE(mg_pow(ab1, 2.0, 2.0 - 1.0, 1));
    mg_handle root_c = out[3] = MAKE(mg_pow(c, 0.5, 0.5 - 1.0, 0));
    mg_handle relu = out[4] = MAKE(mg_relu(ab1));
    mg_handle tanh_ab = out[5] = MAKE(mg_tanh(ab));
    mg_handle exp_a = out[6] = MAKE(mg_exp(a));
    mg_handle minus_b = out[7] = MAKE(mg_mul_const(b, -1.0));
    mg_handle custom = out[8] = MAKE(mg_custom(7.25, 2, pair)); /* hand-built: data kept */
    mg_handle s1 = out[9] = MAKE(mg_add(square, root_c));
    mg_handle s2 = out[10] = MAKE(mg_mul(custom, relu)); /* uses the hand-built node's data */
    mg_handle s3 = out[11] = MAKE(mg_add(s2, s1));
    mg_handle s4 = out[12] = MAKE(mg_mul(tanh_ab, exp_a));
    mg_handle s5 = out[13] = MAKE(mg_add(s3, s4));
    mg_handle s6 = out[14] = MAKE(mg_add(s5, minus_b));
    out[15] = MAKE(mg_pow(s6, -1.0, -1.0 - 1.0, 1)); /* the root: 1 / (...) */
    return 16;
}

/* forward() after new leaf data gives, node for node and bit for bit, the data of a fresh build
 * from those leaves, and zero grads where the fresh build has them; backward() then gives the
 * fresh build's grads.  Leaves and the hand-built node keep their data and grad. */
static void test_forward_equals_a_fresh_build(void) {
    mg_handle a = MAKE(mg_leaf(0.5)), b = MAKE(mg_leaf(-1.25)), c = MAKE(mg_leaf(2.0));
    mg_handle built[PROGRAM_NODES];
    int32_t n = program(a, b, c, built);
    CHECK_INT(n, PROGRAM_NODES);
    mg_handle root = built[n - 1];
    CHECK_INT(mg_backward(root), MG_OK); /* grads to reset */
    mg_set_grad(built[8], 3.0);          /* the hand-built node's grad is the user's */
    static const double leaves[][3] = {{0.5, -1.25, 2.0}, {-0.75, 3.0, 0.25}, {2.0, 0.1, 9.0},
                                       {-0.0, -0.0, 4.0}, {1e-300, 1e300, 1e-320}};
    for (size_t t = 0; t < sizeof leaves / sizeof *leaves; t++) {
        mg_set_data(a, leaves[t][0]), mg_set_data(b, leaves[t][1]), mg_set_data(c, leaves[t][2]);
        mg_set_grad(a, 11.0);
        CHECK_INT(mg_forward(root), MG_OK);
        mg_handle fa = MAKE(mg_leaf(leaves[t][0])), fb = MAKE(mg_leaf(leaves[t][1]));
        mg_handle fc = MAKE(mg_leaf(leaves[t][2]));
        mg_handle fresh[PROGRAM_NODES];
        CHECK_INT(program(fa, fb, fc, fresh), n);
        for (int32_t k = 0; k < n; k++) {
            CHECK_DOUBLE(mg_data(built[k]), mg_data(fresh[k]));
            CHECK_DOUBLE(mg_grad(built[k]), k == 8 ? 3.0 : 0.0);
        }
        CHECK_DOUBLE(mg_data(built[8]), 7.25);
        CHECK_DOUBLE(mg_grad(a), 11.0); /* leaves: data and grad are the user's */
        CHECK_DOUBLE(mg_data(a), leaves[t][0]);
        mg_set_grad(a, 0.0), mg_set_grad(b, 0.0), mg_set_grad(c, 0.0), mg_set_grad(built[8], 0.0);
        CHECK_INT(mg_backward(root), MG_OK);
        CHECK_INT(mg_backward(fresh[n - 1]), MG_OK);
        for (int32_t k = 0; k < n; k++) CHECK_DOUBLE(mg_grad(built[k]), mg_grad(fresh[k]));
        CHECK_DOUBLE(mg_grad(a), mg_grad(fa));
        CHECK_DOUBLE(mg_grad(b), mg_grad(fb));
        CHECK_DOUBLE(mg_grad(c), mg_grad(fc));
        mg_set_grad(built[8], 3.0);
        release_all(fresh, n);
        mg_release(fa), mg_release(fb), mg_release(fc);
    }
    release_all(built, n);
    mg_release(a), mg_release(b), mg_release(c);
}

/* forward() touches only what the root reaches, and a root that is a leaf changes nothing. */
static void test_forward_touches_only_what_the_root_reaches(void) {
    mg_handle x = MAKE(mg_leaf(3.0)), w = MAKE(mg_leaf(2.0));
    mg_handle before = MAKE(mg_mul(x, w)); /* below the root, not reached from it */
    mg_handle y = MAKE(mg_mul(x, x));
    mg_handle root = MAKE(mg_add(y, x));
    mg_handle after = MAKE(mg_add(root, w)); /* a consumer of the root */
    mg_set_data(before, 100.0), mg_set_grad(before, 5.0);
    mg_set_data(after, -100.0), mg_set_grad(after, -5.0);
    mg_set_data(x, 4.0);
    CHECK_INT(mg_forward(root), MG_OK);
    CHECK_DOUBLE(mg_data(root), 20.0);
    CHECK_DOUBLE(mg_data(before), 100.0);
    CHECK_DOUBLE(mg_grad(before), 5.0);
    CHECK_DOUBLE(mg_data(after), -100.0);
    CHECK_DOUBLE(mg_grad(after), -5.0);
    CHECK_DOUBLE(mg_data(w), 2.0);
    mg_set_grad(x, 1.5);
    CHECK_INT(mg_forward(x), MG_OK);
    CHECK_DOUBLE(mg_data(x), 4.0);
    CHECK_DOUBLE(mg_grad(x), 1.5);
    mg_handle all[] = {x, w, before, y, root, after};
    release_all(all, COUNT(all));
}

/* An op that fails in forward() returns building's status.  The reached nodes made before it
 * hold their new data, it and every reached node made after it NaN, no leaf changes; once the
 * leaf is fixed, forward() is exact again. */
static void test_forward_errors(void) {
    mg_handle a = MAKE(mg_leaf(2.0)), b = MAKE(mg_leaf(1.0));
    mg_handle s = MAKE(mg_mul(a, b));          /* before the failing node */
    mg_handle f = MAKE(mg_pow(a, -1.0, -1.0 - 1.0, 1));     /* fails for a == 0 */
    mg_handle g = MAKE(mg_pow(a, 0.5, 0.5 - 1.0, 0));      /* fails for a < 0 */
    mg_handle e = MAKE(mg_exp(b));              /* fails for b > ~709.78 */
    mg_handle p = MAKE(mg_pow(b, 400.0, 400.0 - 1.0, 1));    /* fails for |b| >= ~6.3 */
    mg_handle u = MAKE(mg_add(s, b));           /* after, not depending on f */
    mg_handle t1 = MAKE(mg_add(f, g)), t2 = MAKE(mg_add(e, p));
    mg_handle t3 = MAKE(mg_add(t1, t2));
    mg_handle root = MAKE(mg_add(t3, u));
    mg_handle nodes[] = {s, f, g, e, p, u, t1, t2, t3, root};
    enum { NODES = COUNT(nodes) };
    static const struct {
        double a, b;
        int32_t status;
        int first_nan; /* index in nodes of the failing node */
    } cases[] = {
        {0.0, 1.0, MG_ERR_ZERO_POWER, 1},     /* 0.0 ** -1 */
        {-4.0, 1.0, MG_ERR_COMPLEX_POWER, 2}, /* (-4.0) ** 0.5 */
        {2.0, 1000.0, MG_ERR_EXP_RANGE, 3},   /* exp(1000.0) */
        {2.0, 10.0, MG_ERR_POW_RANGE, 4},     /* 10.0 ** 400 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        mg_set_data(a, cases[c].a), mg_set_data(b, cases[c].b);
        for (int k = 0; k < NODES; k++) mg_set_grad(nodes[k], 9.0);
        CHECK_INT(mg_forward(root), cases[c].status);
        CHECK_DOUBLE(mg_data(a), cases[c].a); /* no leaf changes */
        CHECK_DOUBLE(mg_data(b), cases[c].b);
        CHECK_DOUBLE(mg_data(s), cases[c].a * cases[c].b); /* made before: new data */
        for (int k = 0; k < NODES; k++) {
            if (k >= cases[c].first_nan) CHECK(isnan(mg_data(nodes[k])));
            CHECK_DOUBLE(mg_grad(nodes[k]), 0.0);
        }
        /* The status building the failing op from these leaves gives. */
        switch (cases[c].first_nan) {
        case 1: CHECK_FAILS(mg_pow(a, -1.0, -1.0 - 1.0, 1), cases[c].status); break;
        case 2: CHECK_FAILS(mg_pow(a, 0.5, 0.5 - 1.0, 0), cases[c].status); break;
        case 3: CHECK_FAILS(mg_exp(b), cases[c].status); break;
        case 4: CHECK_FAILS(mg_pow(b, 400.0, 400.0 - 1.0, 1), cases[c].status); break;
        }
        /* Fixed: exact again. */
        mg_set_data(a, 4.0), mg_set_data(b, 0.5);
        CHECK_INT(mg_forward(root), MG_OK);
        CHECK_DOUBLE(mg_data(root), (0.25 + 2.0) + (exp(0.5) + pow(0.5, 400.0)) + (2.0 + 0.5));
        CHECK_DOUBLE(mg_data(u), 2.5);
    }
    release_all(nodes, NODES);
    mg_release(a), mg_release(b);
}

/* forward() keeps the order it walked (its schedule) for the next forward() and backward() of
 * the same root.  It must stay right when compaction moves the graph, when the root's Value is
 * dropped and its handle slot reused, and when another root runs in between. */
static void test_forward_after_compaction_and_reuse(void) {
    mg_handle garbage = MAKE(mg_leaf(1.0));
    for (int k = 0; k < 5000; k++) { /* nodes below the graph, dropped later */
        mg_handle next = MAKE(mg_mul_const(garbage, 1.0));
        mg_release(garbage);
        garbage = next;
    }
    mg_handle x = MAKE(mg_leaf(3.0));
    mg_handle y = MAKE(mg_mul(x, x));
    mg_handle root = MAKE(mg_add(y, x)); /* x*x + x */
    mg_handle other = MAKE(mg_mul(y, y));
    CHECK_INT(mg_forward(root), MG_OK);
    CHECK_INT(mg_backward(root), MG_OK);
    CHECK_DOUBLE(mg_grad(x), 7.0);
    mg_release(garbage);
    CHECK_INT(mg_collect(), MG_OK); /* every node of the graph moves down */
    CHECK_INT(mg_node_count(), 4);
    mg_set_data(x, 5.0), mg_set_grad(x, 0.0);
    CHECK_INT(mg_forward(root), MG_OK);
    CHECK_DOUBLE(mg_data(root), 30.0);
    CHECK_INT(mg_backward(root), MG_OK);
    CHECK_DOUBLE(mg_grad(x), 11.0);
    CHECK_DOUBLE(mg_grad(y), 1.0);
    /* Another root in between, then the first again. */
    CHECK_INT(mg_forward(other), MG_OK);
    CHECK_DOUBLE(mg_data(other), 625.0);
    mg_set_grad(x, 0.0);
    CHECK_INT(mg_backward(root), MG_OK); /* walks: forward() last ran on `other` */
    CHECK_DOUBLE(mg_grad(x), 11.0);
    mg_set_data(x, 2.0);
    CHECK_INT(mg_forward(root), MG_OK);
    mg_set_grad(x, 0.0);
    CHECK_INT(mg_backward(root), MG_OK);
    CHECK_DOUBLE(mg_grad(x), 5.0);
    /* The root's handle released and its slot reused by a node of another shape. */
    mg_handle z = MAKE(mg_leaf(-1.0));
    mg_release(root);
    root = MAKE(mg_mul(x, z)); /* the released handle slot, in its next generation */
    mg_set_grad(x, 0.0);
    mg_set_data(z, 4.0);
    CHECK_INT(mg_forward(root), MG_OK);
    CHECK_DOUBLE(mg_data(root), 8.0);
    CHECK_INT(mg_backward(root), MG_OK);
    CHECK_DOUBLE(mg_grad(x), 4.0);
    CHECK_DOUBLE(mg_grad(z), 2.0);
    CHECK_DOUBLE(mg_grad(y), 1.0); /* y is not reached from the new root */
    mg_handle all[] = {x, y, z, root, other};
    release_all(all, COUNT(all));
}

/* forward() of a 1,000,000-deep chain: no recursion, and backward() after it. */
static void test_forward_deep_chain(void) {
    enum { DEPTH = 1000000 };
    mg_handle x = MAKE(mg_leaf(0.5));
    mg_handle y = MAKE(mg_retain(x));
    for (int32_t k = 0; k < DEPTH; k++) {
        mg_handle next = MAKE(k % 2 ? mg_add(y, x) : mg_tanh(y));
        mg_release(y);
        y = next;
    }
    double expected = 0.25; /* a fresh build's value from x = 0.25 */
    for (int32_t k = 0; k < DEPTH; k++) expected = k % 2 ? expected + 0.25 : tanh(expected);
    mg_set_data(x, 0.25);
    CHECK_INT(mg_forward(y), MG_OK);
    CHECK_DOUBLE(mg_data(y), expected);
    CHECK_INT(mg_backward(y), MG_OK);
    CHECK(mg_grad(x) > 1.0);
    mg_release(y), mg_release(x);
}

/* ---------------------------------------------------------------- memory ---------------- */

/* 5,000,000 nodes, all reachable from the last: the arena grows through many reallocations
 * with every node kept, then shrinks once they are dropped. */
static void test_growth(void) {
    enum { STEPS = 2500000 }; /* two nodes per a + 1.0 */
    mg_handle x = MAKE(mg_leaf(1.0));
    mg_handle y = MAKE(mg_retain(x)), mid = -1;
    int64_t grew = 0, cap = mg_capacity();
    for (int32_t k = 0; k < STEPS; k++) {
        mg_handle next = MAKE(mg_add_const(y, 1.0));
        mg_release(y);
        y = next;
        if (k == STEPS / 2) mid = MAKE(mg_retain(y));
        if (mg_capacity() != cap) grew++, cap = mg_capacity();
    }
    CHECK_INT(mg_node_count(), 2 * STEPS + 1);
    CHECK(mg_capacity() >= mg_node_count());
    CHECK(grew >= 5); /* from 1024 slots past 5M, at least x4 each time */
    CHECK_DOUBLE(mg_data(y), 1.0 + STEPS);
    CHECK_DOUBLE(mg_data(mid), 2.0 + STEPS / 2);
    CHECK_INT(mg_backward(y), MG_OK);
    CHECK_DOUBLE(mg_grad(x), 1.0);
    CHECK_DOUBLE(mg_grad(mid), 1.0);
    mg_handle p[2];
    CHECK_INT(parents(mid, p), 2);
    CHECK_DOUBLE(mg_data(p[0]), 1.0 + STEPS / 2);
    CHECK_DOUBLE(mg_data(p[1]), 1.0);
    release_all(p, 2);
    /* Drop the newer half: mid's history stays, the rest goes, memory follows. */
    mg_release(y);
    CHECK_INT(mg_collect(), MG_OK);
    CHECK_INT(mg_node_count(), 2 * (STEPS / 2 + 1) + 1);
    CHECK_DOUBLE(mg_data(mid), 2.0 + STEPS / 2);
    mg_release(mid), mg_release(x);
    int64_t before = mg_capacity();
    for (int k = 0; k < 16; k++) CHECK_INT(mg_collect(), MG_OK);
    CHECK_INT(mg_node_count(), 0);
    CHECK(mg_capacity() < before);
    CHECK(mg_capacity() <= 1024);
}

/* Some graph on x: garbage is made around it so compaction has to move it. */
static mg_handle small_graph(mg_handle x, double c) {
    mg_handle a = MAKE(mg_mul_const(x, c));
    mg_handle b = MAKE(mg_tanh(a));
    mg_handle d = MAKE(mg_add(b, x));
    mg_handle e = MAKE(mg_pow(d, 2.0, 2.0 - 1.0, 1));
    mg_handle f = MAKE(mg_mul(e, a));
    mg_handle g = MAKE(mg_relu(f));
    mg_set_text(e, MG_TEXT_LABEL, "e", 1);
    mg_handle drop[] = {a, b, d, e, f};
    release_all(drop, COUNT(drop));
    return g;
}

static void make_garbage(mg_handle count) {
    mg_handle h = MAKE(mg_leaf(1.0));
    for (int32_t k = 0; k < count; k++) {
        mg_handle next = MAKE(mg_mul_const(h, 1.0));
        mg_release(h);
        h = next;
    }
    mg_release(h);
}

static void test_reclamation(void) {
    make_garbage(5000);
    mg_handle x = MAKE(mg_leaf(0.75));
    mg_handle g = small_graph(x, 2.0);
    make_garbage(5000);
    mg_handle x2 = MAKE(mg_leaf(-0.5));
    mg_handle g2 = small_graph(x2, 3.0);
    CHECK_INT(mg_backward(g), MG_OK);
    Snapshot before, after;
    snapshot(g, &before);
    int64_t nodes = mg_node_count();
    CHECK_INT(mg_collect(), MG_OK);
    CHECK(mg_node_count() < nodes);
    CHECK_INT(mg_node_count(), 2 * 9); /* x and 8 nodes (one a hidden exponent) per graph */
    snapshot(g, &after);
    check_same_snapshot(&before, &after);
    CHECK_DOUBLE(mg_grad(x), before.grad[before.n - 1]);
    char label[4];
    mg_handle nodes_g[16];
    int32_t pos[32];
    int32_t n = mg_trace(g, 16, nodes_g, pos);
    CHECK_INT(n, 8);
    CHECK_INT(mg_get_text(nodes_g[2], MG_TEXT_LABEL, label, sizeof label), 1); /* e */
    CHECK(label[0] == 'e');
    release_all(nodes_g, n > 0 ? n : 0);

    /* Drop g2: g, built before it, stays; g2's label goes with it. */
    mg_release(g2);
    mg_release(x2);
    CHECK_INT(mg_collect(), MG_OK);
    CHECK_INT(mg_node_count(), 9);
    snapshot(g, &after);
    check_same_snapshot(&before, &after);
    /* The backward result stays right after compaction. */
    zero_history(g);
    CHECK_INT(mg_backward(g), MG_OK);
    snapshot(g, &after);
    check_same_snapshot(&before, &after);
    /* A new node in the slot of a dropped labelled node has no label. */
    mg_handle fresh[16];
    for (int32_t k = 0; k < 16; k++) {
        fresh[k] = MAKE(mg_leaf(k));
        CHECK_INT(mg_get_text(fresh[k], MG_TEXT_LABEL, label, sizeof label), 0);
    }
    release_all(fresh, 16);
    mg_release(g), mg_release(x);
}

/* Building and dropping graphs over and over reuses the arena instead of growing it. */
static void test_arena_reuse(void) {
    mg_handle keep = MAKE(mg_leaf(2.0));
    int64_t peak = 0;
    for (int round = 0; round < 100; round++) {
        mg_handle h = MAKE(mg_retain(keep));
        for (int k = 0; k < 10000; k++) {
            mg_handle next = MAKE(mg_add(h, keep));
            mg_release(h);
            h = next;
        }
        CHECK_DOUBLE(mg_data(h), 2.0 * 10001);
        mg_release(h);
        if (mg_capacity() > peak) peak = mg_capacity();
    }
    CHECK(peak <= 65536); /* one graph needs 10,001 slots; 100 of them would need 1,000,001 */
    CHECK_DOUBLE(mg_data(keep), 2.0);
    mg_release(keep);
}

/* Makes and drops leaves until the arena is full: the next node made must compact first. */
static void fill_with_garbage(void) {
    while (mg_node_count() < mg_capacity()) mg_release(MAKE(mg_leaf(0.0)));
}

/* One mg_mlp neuron of nin inputs whose weights are all w and inputs all x (weight tying, as
 * `layer.neurons *= 40` does in Python): 2 * nin + 1 new nodes, data 1 + 6 * nin exactly for
 * w = 2, x = 3, bias = 1.  Returns the output handle or the status. */
static mg_handle tied_neuron(int32_t nin, mg_handle w, mg_handle x, mg_handle bias) {
    mg_handle *params = malloc(sizeof *params * (size_t)(nin + 1));
    mg_handle *inputs = malloc(sizeof *inputs * (size_t)(nin ? nin : 1));
    double *constants = calloc((size_t)(nin ? nin : 1), sizeof *constants);
    int32_t sizes[] = {nin, 1}, linear[] = {0};
    mg_handle out = MG_ERR_NOMEM;
    if (params && inputs && constants) {
        for (int32_t k = 0; k < nin; k++) params[k] = w, inputs[k] = x;
        params[nin] = bias;
        int32_t status = mg_mlp(1, sizes, linear, params, inputs, constants, &out);
        if (status != MG_OK) out = status;
    }
    free(params), free(inputs), free(constants);
    return out;
}

/* A request of `extra` nodes met by an arena that is full of garbage around a small live set,
 * so that reserve() compacts, finds little alive, and must still size the arena for the
 * request (issue 13: it sized it for the live set alone and mg_mlp wrote past its end). */
static void check_big_request(mg_handle w, mg_handle x, mg_handle bias, int64_t extra) {
    fill_with_garbage();
    int32_t nin = (int32_t)(extra / 2);
    mg_handle out = tied_neuron(nin, w, x, bias);
    CHECK(out >= 0);
    if (out < 0) return;
    CHECK_DOUBLE(mg_data(out), 1.0 + 6.0 * nin);
    CHECK(mg_capacity() >= mg_node_count());
    CHECK_INT(mg_backward(out), MG_OK);
    CHECK_DOUBLE(mg_grad(w), 3.0 * nin);
    mg_set_grad(w, 0.0), mg_set_grad(x, 0.0), mg_set_grad(bias, 0.0);
    mg_release(out);
}

static void test_reserve_after_compaction(void) {
    mg_handle w = MAKE(mg_leaf(2.0)), x = MAKE(mg_leaf(3.0)), bias = MAKE(mg_leaf(1.0));
    /* A big arena (a 400,000-node chain, then dropped), asked for a range of sizes around its
     * capacity after each compaction. */
    mg_handle y = MAKE(mg_retain(x));
    for (int32_t k = 0; k < 200000; k++) {
        mg_handle next = MAKE(mg_add_const(y, 1.0));
        mg_release(y);
        y = next;
    }
    mg_release(y);
    int64_t big = mg_capacity();
    for (int64_t extra = big / 64; extra <= 2 * big; extra *= 2)
        check_big_request(w, x, bias, extra);
    /* The same from an arena shrunk by mg_collect to its smallest, ... */
    CHECK_INT(mg_collect(), MG_OK);
    CHECK_INT(mg_capacity(), 1024);
    for (int64_t extra = 16; extra <= 4096; extra *= 2) {
        check_big_request(w, x, bias, extra);
        CHECK_INT(mg_collect(), MG_OK);
    }
    /* ... and from one shrunk on its own, after a run of compactions found it oversized. */
    check_big_request(w, x, bias, 100000);
    int64_t resizes = mg_arena_resizes(), cap = mg_capacity();
    for (int k = 0; k < 64 && mg_arena_resizes() == resizes; k++) {
        fill_with_garbage();
        mg_release(MAKE(mg_leaf(0.0)));
    }
    CHECK(mg_capacity() < cap);
    check_big_request(w, x, bias, cap);
    mg_release(w), mg_release(x), mg_release(bias);
}

/* A chain of `nodes` nodes, all held through its last node (returned). */
static mg_handle held_chain(mg_handle start, int32_t nodes) {
    mg_handle y = MAKE(mg_retain(start));
    for (int32_t k = 0; k < nodes; k++) {
        mg_handle next = MAKE(mg_mul(y, start));
        mg_release(y);
        y = next;
    }
    return y;
}

/* After a big graph is dropped, memory follows the live set down: at once on mg_collect, and
 * by itself within a bounded amount of further work: a run of SHRINK_AFTER compactions that
 * find the arena oversized, then a probe (one more, early) that does too. */
static void test_memory_follows_live_set(void) {
    enum { BIG = 1000000, SMALL = 2000, SHRINK_AFTER = 4 };
    mg_handle one = MAKE(mg_leaf(1.0));
    int64_t small_bytes = mg_arena_bytes();
    mg_handle big = held_chain(one, BIG);
    int64_t big_cap = mg_capacity(), big_bytes = mg_arena_bytes();
    CHECK(big_cap >= BIG);
    CHECK(big_bytes >= BIG * mg_bytes_per_node());
    mg_release(big);
    /* Explicitly: one mg_collect gives it all back. */
    CHECK_INT(mg_collect(), MG_OK);
    CHECK_INT(mg_capacity(), 1024);
    CHECK(mg_arena_bytes() <= small_bytes);
    /* By itself: regrow, drop, then keep making small graphs. */
    big = held_chain(one, BIG);
    mg_release(big);
    int64_t made = 0, compactions = mg_compactions();
    while (mg_capacity() > 16 * SMALL && made <= (SHRINK_AFTER + 1) * big_cap) {
        mg_release(held_chain(one, SMALL));
        made += SMALL;
    }
    CHECK(mg_capacity() <= 16 * SMALL);
    CHECK(made <= (SHRINK_AFTER + 1) * big_cap);
    CHECK(mg_compactions() - compactions <= SHRINK_AFTER + 1);
    CHECK_DOUBLE(mg_data(one), 1.0);
    mg_release(one);
}

/* A training loop's shape: parameters always held; each step holds 100 calls' graphs (the
 * live set climbs to ~66,000 nodes), then drops them all; some garbage varies its length.  Once warm, the arena never resizes,
 * holds at most 2.5x the peak live set, and compacts about once a step, not every call. */
static void test_no_resize_storm(void) {
    enum { PARAMS = 337, CALLS = 100, CALL_NODES = 650, WARM = 20, STEPS = 300 };
    mg_handle params[PARAMS];
    for (int32_t k = 0; k < PARAMS; k++) params[k] = MAKE(mg_leaf(1.0));
    int64_t resizes = 0, compactions = 0, max_cap = 0;
    uint32_t seed = 1;
    for (int step = 0; step < WARM + STEPS; step++) {
        if (step == WARM) resizes = mg_arena_resizes(), compactions = mg_compactions();
        mg_handle outs[CALLS];
        /* Garbage of random length, so that compactions fall at every phase of a step. */
        make_garbage((mg_handle)(30000 * (uniform(&seed) + 1.0) / 2));
        for (int32_t c = 0; c < CALLS; c++) outs[c] = held_chain(params[c], CALL_NODES);
        release_all(outs, CALLS);
        if (mg_capacity() > max_cap) max_cap = mg_capacity();
    }
    int64_t peak_live = PARAMS + CALLS * CALL_NODES;
    CHECK_INT(mg_arena_resizes() - resizes, 0);
    CHECK(max_cap <= 5 * (peak_live + CALL_NODES) / 2 + 1024);
    CHECK(mg_compactions() - compactions <= STEPS + STEPS / 2);
    release_all(params, PARAMS);
}

/* Labels count toward reclaiming: short-lived Values with big labels do not pile them up. */
static void test_dead_labels_are_reclaimed(void) {
    enum { LABELS = 400, SIZE = 256 * 1024 };
    char *text = malloc(SIZE);
    CHECK(text != NULL);
    if (!text) return;
    memset(text, 'x', SIZE);
    int64_t start = mg_arena_bytes(), most = start;
    mg_handle keep = MAKE(mg_leaf(5.0));
    CHECK_INT(mg_set_text(keep, MG_TEXT_LABEL, "kept", 4), MG_OK);
    for (int k = 0; k < LABELS; k++) {
        mg_handle h = MAKE(mg_leaf(k));
        CHECK_INT(mg_set_text(h, MG_TEXT_LABEL, text, SIZE), MG_OK);
        mg_release(h);
        if (mg_arena_bytes() > most) most = mg_arena_bytes();
    }
    /* Without reclaiming: 100 MiB of labels.  With it, at most the slack (1 MiB) and one more. */
    CHECK(most - start <= (1 << 20) + 2 * SIZE);
    char buf[8];
    CHECK_INT(mg_get_text(keep, MG_TEXT_LABEL, buf, sizeof buf), 4);
    CHECK(memcmp(buf, "kept", 4) == 0);
    free(text);
    mg_release(keep);
}

/* One compaction of many labelled nodes, half of them dead, interleaved: each survivor keeps
 * its own label and kind (the text pass is a single sweep that must keep the table sorted). */
static void test_labels_through_compaction(void) {
    enum { N = 80000 };
    mg_handle *h = malloc(sizeof *h * N);
    CHECK(h != NULL);
    if (!h) return;
    char text[32], buf[32];
    for (int32_t k = 0; k < N; k++) {
        h[k] = MAKE(mg_leaf(k));
        int len = snprintf(text, sizeof text, "leaf %d", (int)k);
        CHECK_INT(mg_set_text(h[k], k % 5 ? MG_TEXT_LABEL : MG_TEXT_OP, text, (size_t)len), MG_OK);
    }
    for (int32_t k = 0; k < N; k++)
        if (k % 3 != 1) mg_release(h[k]), h[k] = -1;
    CHECK_INT(mg_collect(), MG_OK);
    CHECK_INT(mg_node_count(), N / 3 + (N % 3 == 2));
    /* Once the kept ones go too, mg_collect gives the text table's memory back (3 MiB for
     * 80,000 entries); the handle table (1.5 MiB for 80,000 handles) cannot shrink. */
    for (int32_t k = 1; k < N; k += 3) {
        int len = snprintf(text, sizeof text, "leaf %d", (int)k);
        int32_t kind = k % 5 ? MG_TEXT_LABEL : MG_TEXT_OP;
        CHECK_INT(mg_get_text(h[k], kind, buf, sizeof buf), len);
        CHECK(memcmp(buf, text, (size_t)len) == 0);
        CHECK_INT(mg_get_text(h[k], kind == MG_TEXT_OP ? MG_TEXT_LABEL : MG_TEXT_OP, buf,
                              sizeof buf), 0);
        CHECK_DOUBLE(mg_data(h[k]), (double)k);
        mg_release(h[k]);
    }
    CHECK_INT(mg_collect(), MG_OK);
    CHECK(mg_arena_bytes() < 2 << 20);
    free(h);
}

/* The headroom sets how far the arena grows past a live set that fills it, and how far
 * mg_collect shrinks it. */
static void test_headroom(void) {
    CHECK_INT(mg_set_headroom(149), MG_ERR_BAD_ARGUMENT);
    CHECK_INT(mg_set_headroom(1001), MG_ERR_BAD_ARGUMENT);
    mg_handle one = MAKE(mg_leaf(1.0));
    int32_t headrooms[] = {150, 250, 400};
    for (int k = 0; k < COUNT(headrooms); k++) {
        CHECK_INT(mg_set_headroom(headrooms[k]), MG_OK);
        mg_handle big = held_chain(one, 100000);
        fill_with_garbage();
        mg_handle leaf = MAKE(mg_leaf(0.0)); /* compacts: 100,003 live nodes fill the arena */
        int64_t need = 100003; /* grown to need * h, or already over half-way there */
        CHECK(mg_capacity() >= need * (100 + headrooms[k]) / 200);
        CHECK(mg_capacity() < need * headrooms[k] / 100 + 1024);
        mg_release(big);
        CHECK_INT(mg_collect(), MG_OK); /* 2 live nodes: the smallest arena */
        CHECK_INT(mg_capacity(), 1024);
        mg_release(leaf);
    }
    CHECK_INT(mg_set_headroom(250), MG_OK);
    mg_release(one);
}

/* ---------------------------------------------------------------- bad handles ----------- */

/* mg_mlp for one neuron: its output handle, or the status. */
static mg_handle neuron(const int32_t *sizes, const int32_t *nonlin, const mg_handle *params,
                      const mg_handle *inputs, const double *constants) {
    mg_handle out = -1;
    int32_t status = mg_mlp(1, sizes, nonlin, params, inputs, constants, &out);
    return status == MG_OK ? out : status;
}

static void check_bad_handle(int line, mg_handle bad, mg_handle good) {
    char what[96];
    snprintf(what, sizeof what, "handle %ld (line %d)", (long)bad, line);
    const char *saved = current_test;
    current_test = what;
    CHECK_INT(mg_add(good, bad), MG_ERR_BAD_HANDLE); /* a bad right operand too */
    CHECK_INT(mg_mul(good, bad), MG_ERR_BAD_HANDLE);
    int64_t nodes = mg_node_count(), handles = mg_handle_count();
    mg_handle pair[2] = {good, bad}, out[4] = {-9, -9, -9, -9};
    int32_t pos[8];
    char buf[8] = "xxxxxxx";
    CHECK_FAILS(mg_add(bad, good), MG_ERR_BAD_HANDLE);
    if (bad >= 0) CHECK_FAILS(mg_add(good, bad), MG_ERR_BAD_HANDLE);
    CHECK_FAILS(mg_mul(bad, good), MG_ERR_BAD_HANDLE);
    if (bad >= 0) CHECK_FAILS(mg_mul(good, bad), MG_ERR_BAD_HANDLE);
    CHECK_FAILS(mg_add_const(bad, 1.0), MG_ERR_BAD_HANDLE);
    CHECK_FAILS(mg_mul_const(bad, 1.0), MG_ERR_BAD_HANDLE);
    CHECK_FAILS(mg_pow(bad, 2.0, 2.0 - 1.0, 1), MG_ERR_BAD_HANDLE);
    CHECK_FAILS(mg_pow(bad, 0.5, 0.5 - 1.0, 0), MG_ERR_BAD_HANDLE);
    CHECK_FAILS(mg_relu(bad), MG_ERR_BAD_HANDLE);
    CHECK_FAILS(mg_tanh(bad), MG_ERR_BAD_HANDLE);
    CHECK_FAILS(mg_exp(bad), MG_ERR_BAD_HANDLE);
    CHECK_FAILS(mg_custom(1.0, 2, pair), MG_ERR_BAD_HANDLE);
    CHECK_FAILS(mg_custom(1.0, 1, &pair[1]), MG_ERR_BAD_HANDLE);
    CHECK_FAILS(mg_retain(bad), MG_ERR_BAD_HANDLE);
    CHECK(isnan(mg_data(bad)));
    CHECK(isnan(mg_grad(bad)));
    CHECK(isnan(mg_exponent(bad)));
    CHECK_INT(mg_set_data(bad, 1.0), MG_ERR_BAD_HANDLE);
    CHECK_INT(mg_set_grad(bad, 1.0), MG_ERR_BAD_HANDLE);
    CHECK_INT(mg_op(bad), MG_ERR_BAD_HANDLE);
    CHECK_INT(mg_parents(bad, out), MG_ERR_BAD_HANDLE);
    CHECK_INT(out[0], -9);
    CHECK_INT(mg_set_text(bad, MG_TEXT_LABEL, "a", 1), MG_ERR_BAD_HANDLE);
    CHECK_INT(mg_get_text(bad, MG_TEXT_LABEL, buf, sizeof buf), MG_ERR_BAD_HANDLE);
    CHECK(strcmp(buf, "xxxxxxx") == 0);
    CHECK_INT(mg_backward(bad), MG_ERR_BAD_HANDLE);
    CHECK_INT(mg_local_backward(bad), MG_ERR_BAD_HANDLE);
    int32_t traced = mg_trace(bad, 4, out, pos);
    CHECK_INT(traced, MG_ERR_BAD_HANDLE);
    if (traced > 0 && traced <= 4) release_all(out, traced);
    CHECK_INT(mg_zero_grads(pair, 2), MG_ERR_BAD_HANDLE);
    /* mg_mlp, a 1-input neuron: a bad input (a negative one means "the number in constants"),
     * then a bad weight, then a bad bias. */
    int32_t sizes[] = {1, 1}, nonlin[] = {1};
    mg_handle params[] = {good, good}, in[] = {bad};
    double constants[] = {0.0};
    if (bad >= 0) CHECK_FAILS(neuron(sizes, nonlin, params, in, constants), MG_ERR_BAD_HANDLE);
    in[0] = good;
    params[0] = bad;
    CHECK_FAILS(neuron(sizes, nonlin, params, in, constants), MG_ERR_BAD_HANDLE);
    params[0] = good, params[1] = bad;
    CHECK_FAILS(neuron(sizes, nonlin, params, in, constants), MG_ERR_BAD_HANDLE);
    mg_release(bad); /* never fails, changes nothing */
    CHECK_INT(mg_node_count(), nodes);
    CHECK_INT(mg_handle_count(), handles);
    CHECK_DOUBLE(mg_data(good), 1.5);
    CHECK_DOUBLE(mg_grad(good), 0.25);
    current_test = saved;
}

static void test_bad_handles(void) {
    mg_handle good = MAKE(mg_leaf(1.5));
    mg_set_grad(good, 0.25); /* a failed mg_zero_grads must not zero it */
    mg_handle released = MAKE(mg_leaf(2.0));
    mg_release(released);
    mg_handle unused = good > released ? good + 1 : released + 1;
    mg_handle bad[] = {-1, -3, INT32_MIN, INT32_MAX, 1 << 30, unused, released};
    for (int32_t k = 0; k < COUNT(bad); k++) check_bad_handle(__LINE__, bad[k], good);
    mg_release(good);
    CHECK_INT(mg_handle_count(), 0);
}

/* A released handle's slot is reused by a new node under a new generation: the stale handle
 * is refused everywhere, it never reaches the new node. */
static void test_stale_handles(void) {
    mg_handle first = MAKE(mg_leaf(1.0));
    mg_release(first);
    mg_handle second = MAKE(mg_leaf(1.5)); /* the same slot, a new generation */
    mg_set_grad(second, 0.25); /* (what check_bad_handle expects of the good handle) */
    CHECK_INT((uint64_t)second & 0xffffffff, (uint64_t)first & 0xffffffff);
    CHECK(second != first);
    check_bad_handle(__LINE__, first, second);
    mg_release(first); /* a stale release changes nothing */
    CHECK_DOUBLE(mg_data(second), 1.5);
    CHECK_INT(mg_handle_count(), 1);
    mg_handle forged = second + 4294967296.0; /* a later generation, not yet made */
    check_bad_handle(__LINE__, forged, second);
    check_bad_handle(__LINE__, second + 0.5, second); /* not a whole number */
    check_bad_handle(__LINE__, NAN, second);
    check_bad_handle(__LINE__, forged, second);
    mg_release(second);
}

/* While releases are put off (the collector runs), mg_release frees nothing and says so;
 * mg_release_now frees in any mode; NEVER is final. */
static void test_release_modes(void) {
    mg_handle a = MAKE(mg_leaf(1.0));
    CHECK_INT(mg_set_release_mode(MG_RELEASE_LATER), MG_OK);
    CHECK_INT(mg_release(a), 1);
    CHECK_DOUBLE(mg_data(a), 1.0);
    CHECK_INT(mg_handle_count(), 1);
    mg_release_now(a);
    CHECK_INT(mg_handle_count(), 0);
    CHECK_INT(mg_set_release_mode(MG_RELEASE_NOW), MG_OK);
    mg_handle b = MAKE(mg_leaf(2.0));
    CHECK_INT(mg_release(b), 0);
    CHECK_INT(mg_handle_count(), 0);
    CHECK_INT(mg_set_release_mode(3), MG_ERR_BAD_ARGUMENT);
    CHECK_INT(mg_set_release_mode(-1), MG_ERR_BAD_ARGUMENT);
}

/* mg_reclaim_unowned: owner counts become what the caller counted; unlisted handles go. */
static void test_reclaim_unowned(void) {
    mg_handle kept = MAKE(mg_leaf(1.5));
    mg_set_grad(kept, 0.25);
    mg_handle twice = MAKE(mg_leaf(2.0));
    CHECK_INT(mg_retain(twice), twice);
    mg_handle stranded = MAKE(mg_add(kept, twice)); /* owned by nobody any more */
    mg_handle owned[] = {kept, twice, twice, -5, stranded + 7 * 4294967296.0};
    CHECK_INT(mg_reclaim_unowned(owned, COUNT(owned)), 1);
    check_bad_handle(__LINE__, stranded, kept);
    CHECK_INT(mg_handle_count(), 2);
    mg_release(twice);
    CHECK_DOUBLE(mg_data(twice), 2.0); /* one owner left */
    CHECK_INT(mg_reclaim_unowned(owned, -1), MG_ERR_BAD_ARGUMENT);
    CHECK_INT(mg_reclaim_unowned(NULL, 0), 2); /* nobody owns anything: all go */
    CHECK_INT(mg_handle_count(), 0);
}

static void test_bad_arguments(void) {
    mg_handle a = MAKE(mg_leaf(1.0));
    mg_handle out[4];
    int32_t pos[8];
    int64_t nodes = mg_node_count();
    CHECK_INT(mg_trace(a, -1, out, pos), MG_ERR_BAD_ARGUMENT);
    CHECK_INT(mg_set_text(a, 2, "x", 1), MG_ERR_BAD_ARGUMENT);
    CHECK_INT(mg_set_text(a, -1, "x", 1), MG_ERR_BAD_ARGUMENT);
    CHECK_INT(mg_set_text(a, MG_TEXT_LABEL, "x", (size_t)INT32_MAX + 1), MG_ERR_BAD_ARGUMENT);
    CHECK_INT(mg_set_node_limit(0), MG_ERR_BAD_ARGUMENT);
    CHECK_INT(mg_set_node_limit(-5), MG_ERR_BAD_ARGUMENT);
    CHECK_INT(mg_set_node_limit(MAX_NODE_LIMIT + 1), MG_ERR_BAD_ARGUMENT);
    int32_t sizes[] = {1, 1}, nonlin[] = {0};
    mg_handle params[] = {a, a}, in[] = {a};
    double constants[] = {0.0};
    CHECK_INT(mg_mlp(0, sizes, nonlin, params, in, constants, out), MG_ERR_BAD_ARGUMENT);
    CHECK_INT(mg_mlp(-1, sizes, nonlin, params, in, constants, out), MG_ERR_BAD_ARGUMENT);
    sizes[1] = -1;
    CHECK_INT(mg_mlp(1, sizes, nonlin, params, in, constants, out), MG_ERR_BAD_ARGUMENT);
    sizes[0] = -1, sizes[1] = 1;
    CHECK_INT(mg_mlp(1, sizes, nonlin, params, in, constants, out), MG_ERR_BAD_ARGUMENT);
    CHECK_INT(mg_node_count(), nodes);
    CHECK_INT(mg_handle_count(), 1);
    mg_release(a);
}

/* ---------------------------------------------------------------- node limit ------------ */

static void test_node_limit(void) {
    enum { LIMIT = 5000 };
    mg_handle held[LIMIT + 1];
    int32_t n = 0;
    mg_handle status = 0;
    CHECK_INT(mg_set_node_limit(LIMIT), MG_OK);
    /* All held: the first leaf past the limit fails (the arena's 1024 slots grow up to it). */
    while (n <= LIMIT && (status = mg_leaf(n)) >= 0) held[n++] = status;
    CHECK_INT(status, MG_ERR_NODE_LIMIT);
    CHECK_INT(n, LIMIT);
    CHECK_INT(mg_node_count(), LIMIT);
    /* Every maker says so and makes nothing; nothing held is touched. */
    int32_t sizes[] = {1, 1}, nonlin[] = {1};
    mg_handle params[] = {held[0], held[1]}, out[2];
    double constants[] = {2.0};
    mg_handle in[] = {-1};
    CHECK_INT(mg_add(held[1], held[2]), MG_ERR_NODE_LIMIT);
    CHECK_INT(mg_mul_const(held[1], 2.0), MG_ERR_NODE_LIMIT);
    CHECK_INT(mg_pow(held[1], 2.0, 2.0 - 1.0, 1), MG_ERR_NODE_LIMIT);
    CHECK_INT(mg_tanh(held[1]), MG_ERR_NODE_LIMIT);
    CHECK_INT(mg_custom(1.0, 0, NULL), MG_ERR_NODE_LIMIT);
    CHECK_INT(mg_mlp(1, sizes, nonlin, params, in, constants, out), MG_ERR_NODE_LIMIT);
    CHECK_INT(mg_node_count(), LIMIT);
    CHECK_INT(mg_handle_count(), LIMIT);
    /* One slot free: a + 1.0 needs two (the constant's leaf and the sum) and fails whole. */
    mg_release(held[--n]);
    CHECK_INT(mg_add_const(held[1], 1.0), MG_ERR_NODE_LIMIT);
    mg_handle one = MAKE(mg_relu(held[3]));
    CHECK_DOUBLE(mg_data(one), 3.0);
    mg_release(one);
    /* An mlp needing more nodes than the limit fails before it starts. */
    release_all(held + 2, n - 2);
    n = 2;
    int32_t big_sizes[] = {1, LIMIT};
    CHECK_INT(mg_mlp(1, big_sizes, nonlin, params, in, constants, out), MG_ERR_NODE_LIMIT);
    /* Usable again: a whole graph up to the limit, with exact data. */
    mg_handle h = MAKE(mg_retain(held[1]));
    for (int32_t k = 0; k < LIMIT / 2 - 2; k++) {
        mg_handle next = MAKE(mg_add(h, held[1]));
        mg_release(h);
        h = next;
    }
    CHECK_DOUBLE(mg_data(h), (double)(LIMIT / 2 - 1));
    for (int k = 0; k < COUNT(held) && k < n; k++) CHECK_DOUBLE(mg_data(held[k]), (double)k);
    mg_release(h);
    /* A limit below the live count: making nodes fails (once the slots the arena already has
     * are used up) until enough is released. */
    CHECK_INT(mg_set_node_limit(1), MG_OK);
    CHECK_INT(mg_collect(), MG_OK);
    CHECK_INT(mg_node_count(), 2);
    mg_handle fill[LIMIT];
    int32_t filled = 0;
    while (filled < LIMIT && (status = mg_leaf(0.0)) >= 0) fill[filled++] = status;
    CHECK_INT(status, MG_ERR_NODE_LIMIT);
    release_all(fill, filled);
    mg_release(held[0]);
    mg_release(held[1]);
    mg_handle last = MAKE(mg_leaf(1.0));
    CHECK_DOUBLE(mg_data(last), 1.0);
    mg_release(last);
    CHECK_INT(mg_set_node_limit(MAX_NODE_LIMIT), MG_OK);
}

/* ---------------------------------------------------------------- mg_mlp ---------------- */

/* micrograd's neuron, op by op: sum((wi*xi for ...), b), then ReLU if nonlin. */
static mg_handle neuron_by_ops(const mg_handle *w, int32_t nin, const mg_handle *x,
                               const double *c, bool nonlin) {
    mg_handle acc = MAKE(mg_retain(w[nin]));
    for (int32_t k = 0; k < nin; k++) {
        mg_handle product = x[k] >= 0 ? MAKE(mg_mul(w[k], x[k])) : MAKE(mg_mul_const(w[k], c[k]));
        mg_handle next = MAKE(mg_add(acc, product));
        mg_release(product), mg_release(acc);
        acc = next;
    }
    if (nonlin) {
        mg_handle r = MAKE(mg_relu(acc));
        mg_release(acc);
        acc = r;
    }
    return acc;
}

/* The same MLP called through mg_mlp and built op by op must be the same graph node for node
 * (mg_trace sees the same ops, data and shape) with the same grads, bit for bit. */
static void compare_mlp(int32_t nlayers, const int32_t *sizes, const int32_t *nonlin,
                        const mg_handle *inputs, const double *constants) {
    mg_handle params[256];
    int32_t nparams = 0, nout = sizes[nlayers];
    uint32_t seed = 12345;
    for (int32_t l = 0; l < nlayers; l++)
        for (int32_t k = 0; k < (sizes[l] + 1) * sizes[l + 1]; k++)
            params[nparams++] = MAKE(mg_leaf(uniform(&seed)));

    int64_t nodes = mg_node_count(), handles = mg_handle_count();
    mg_handle out[16];
    CHECK_INT(mg_mlp(nlayers, sizes, nonlin, params, inputs, constants, out), MG_OK);
    CHECK_INT(mg_handle_count(), handles + nout); /* hidden activations get no handle */
    int64_t made_nodes = mg_node_count() - nodes;

    /* By ops, layer by layer (a layer's outputs are the next layer's Value inputs). */
    mg_handle x[16], y[16], nx = sizes[0];
    double c[16];
    for (int32_t k = 0; k < nx; k++) {
        x[k] = inputs[k] >= 0 ? MAKE(mg_retain(inputs[k])) : -1;
        c[k] = constants[k];
    }
    const mg_handle *w = params;
    nodes = mg_node_count();
    for (int32_t l = 0; l < nlayers; l++) {
        for (int32_t j = 0; j < sizes[l + 1]; j++, w += sizes[l] + 1)
            y[j] = neuron_by_ops(w, sizes[l], x, c, nonlin[l]);
        for (int32_t k = 0; k < sizes[l]; k++)
            if (x[k] >= 0) mg_release(x[k]);
        memcpy(x, y, sizeof *x * (size_t)sizes[l + 1]);
    }
    CHECK_INT(mg_node_count() - nodes, made_nodes);

    for (int32_t j = 0; j < nout; j++) {
        CHECK_DOUBLE(mg_data(out[j]), mg_data(x[j]));
        Snapshot a, b;
        snapshot(out[j], &a);
        snapshot(x[j], &b);
        check_same_snapshot(&a, &b);
    }
    /* The grads each graph gives every parameter and Value input. */
    double grads[2][256 + 16];
    mg_handle *roots[2] = {out, x};
    for (int g = 0; g < 2; g++) {
        CHECK_INT(mg_zero_grads(params, nparams), MG_OK);
        for (int32_t k = 0; k < sizes[0]; k++)
            if (inputs[k] >= 0) mg_set_grad(inputs[k], 0.0);
        for (int32_t j = 0; j < nout; j++) CHECK_INT(mg_backward(roots[g][j]), MG_OK);
        for (int32_t k = 0; k < nparams; k++) grads[g][k] = mg_grad(params[k]);
        for (int32_t k = 0; k < sizes[0]; k++)
            grads[g][nparams + k] = inputs[k] >= 0 ? mg_grad(inputs[k]) : 0.0;
    }
    bool any_nonzero = false;
    for (int32_t k = 0; k < nparams + sizes[0]; k++) {
        CHECK_DOUBLE(grads[0][k], grads[1][k]);
        any_nonzero |= grads[0][k] != 0.0;
    }
    CHECK(any_nonzero);
    release_all(out, nout);
    release_all(x, nout);
    release_all(params, nparams);
}

static void test_mlp(void) {
    mg_handle a = MAKE(mg_leaf(0.25)), b = MAKE(mg_leaf(-1.5));
    /* MLP(3, [4, 4, 1]) on [Value, 0.5, Value]: a number input gets a leaf per neuron. */
    int32_t sizes[] = {3, 4, 4, 1}, nonlin[] = {1, 1, 0};
    mg_handle inputs[] = {a, -1, b};
    double constants[] = {0.0, 0.5, 0.0};
    compare_mlp(3, sizes, nonlin, inputs, constants);
    /* A Layer(2, 3) on numbers only, and a ReLU Neuron(2) on Values only. */
    int32_t layer_sizes[] = {2, 3}, relu[] = {1};
    mg_handle numbers[] = {-1, -1};
    double pair[] = {0.75, -2.0};
    compare_mlp(1, layer_sizes, relu, numbers, pair);
    int32_t neuron_sizes[] = {2, 1};
    mg_handle values[] = {a, b};
    compare_mlp(1, neuron_sizes, relu, values, pair);
    /* A neuron of no inputs is its bias: the output is the bias's own node. */
    mg_handle bias = MAKE(mg_leaf(0.5)), out;
    int32_t empty_sizes[] = {0, 1}, linear[] = {0};
    CHECK_INT(mg_mlp(1, empty_sizes, linear, &bias, NULL, NULL, &out), MG_OK);
    CHECK(out == bias);
    mg_release(out), mg_release(bias);
    mg_release(a), mg_release(b);
}

/* ---------------------------------------------------------------- mg_trace -------------- */

static void test_trace(void) {
    mg_handle a = MAKE(mg_leaf(2.0)), b = MAKE(mg_leaf(3.0));
    mg_handle ab = MAKE(mg_mul(a, b));
    mg_handle s = MAKE(mg_add(ab, a));
    mg_handle p = MAKE(mg_pow(s, 2.0, 2.0 - 1.0, 1));     /* its exponent leaf is hidden */
    mg_handle root = MAKE(mg_add_const(p, 1.0)); /* its 1.0 leaf is not */
    mg_release(ab), mg_release(s), mg_release(p);
    enum { N = 7 }; /* root, its 1.0, p, s, ab, b, a */
    mg_handle nodes[N + 1];
    int32_t pos[2 * (N + 1)];
    for (int k = 0; k < 2 * (N + 1); k++) pos[k] = -7;
    int64_t handles = mg_handle_count();

    CHECK_INT(mg_trace(root, 0, NULL, NULL), N);
    CHECK_INT(mg_trace(root, N - 1, nodes, pos), N); /* too small: no handles, no positions */
    CHECK_INT(mg_handle_count(), handles);
    for (int k = 0; k < 2 * (N + 1); k++) CHECK_INT(pos[k], -7);

    CHECK_INT(mg_trace(root, N + 1, nodes, pos), N);
    CHECK_INT(mg_handle_count(), handles + 4); /* 1.0, p, s, ab had no handle */
    CHECK_INT(nodes[0], root);
    CHECK_INT(nodes[N - 1], a);
    CHECK_INT(nodes[N - 2], b);
    mg_handle ops[N] = {MG_ADD, MG_LEAF, MG_POWI, MG_ADD, MG_MUL, MG_LEAF, MG_LEAF};
    for (int32_t k = 0; k < N; k++) {
        CHECK_INT(mg_op(nodes[k]), ops[k]);
        mg_handle par[2];
        int32_t count = parents(nodes[k], par);
        for (int32_t q = 0; q < 2; q++) {
            int32_t at = pos[2 * k + q];
            if (q >= count) {
                CHECK_INT(at, -1);
                continue;
            }
            CHECK(at > k && at < N); /* parents come after: newest to oldest */
            CHECK(at > k && at < N && nodes[at] == par[q]);
        }
        release_all(par, count > 0 ? count : 0);
    }
    CHECK_INT(pos[2 * N], -7); /* nothing written past the count */
    release_all(nodes, N);
    CHECK_INT(mg_handle_count(), handles);
    CHECK_INT(mg_trace(a, 1, nodes, pos), 1);
    CHECK_INT(nodes[0], a);
    CHECK_INT(pos[0], -1);
    CHECK_INT(pos[1], -1);
    mg_release(nodes[0]);
    mg_release(root), mg_release(a), mg_release(b);
}

/* ---------------------------------------------------------------- texts ----------------- */

static void test_texts(void) {
    mg_handle a = MAKE(mg_leaf(1.0)), b = MAKE(mg_leaf(2.0));
    char buf[16];
    CHECK_INT(mg_get_text(a, MG_TEXT_LABEL, buf, sizeof buf), 0);
    CHECK_INT(mg_set_text(a, MG_TEXT_LABEL, "weight", 6), MG_OK);
    memset(buf, '#', sizeof buf);
    CHECK_INT(mg_get_text(a, MG_TEXT_LABEL, buf, 6), 6); /* exactly fits, no NUL added */
    CHECK(memcmp(buf, "weight#", 7) == 0);
    memset(buf, '#', sizeof buf);
    CHECK_INT(mg_get_text(a, MG_TEXT_LABEL, buf, 5), 6); /* too small: the length, buf untouched */
    CHECK(buf[0] == '#' && buf[5] == '#');
    CHECK_INT(mg_get_text(a, MG_TEXT_LABEL, NULL, 0), 6);
    CHECK_INT(mg_get_text(a, MG_TEXT_OP, buf, sizeof buf), 0); /* the kinds are separate */
    CHECK_INT(mg_set_text(a, MG_TEXT_OP, "op\0x", 4), MG_OK);   /* bytes, NULs included */
    CHECK_INT(mg_get_text(a, MG_TEXT_OP, buf, sizeof buf), 4);
    CHECK(memcmp(buf, "op\0x", 4) == 0);
    CHECK_INT(mg_get_text(a, MG_TEXT_LABEL, buf, sizeof buf), 6);
    CHECK_INT(mg_set_text(a, MG_TEXT_LABEL, "w", 1), MG_OK); /* replaced */
    CHECK_INT(mg_get_text(a, MG_TEXT_LABEL, buf, sizeof buf), 1);
    CHECK(buf[0] == 'w');
    CHECK_INT(mg_set_text(a, MG_TEXT_LABEL, NULL, 0), MG_OK); /* cleared */
    CHECK_INT(mg_get_text(a, MG_TEXT_LABEL, buf, sizeof buf), 0);
    CHECK_INT(mg_set_text(a, MG_TEXT_LABEL, NULL, 0), MG_OK); /* clearing twice is fine */
    CHECK_INT(mg_get_text(b, MG_TEXT_LABEL, buf, sizeof buf), 0);
    CHECK_INT(mg_get_text(a, 7, buf, sizeof buf), MG_ERR_BAD_ARGUMENT); /* no such kind */
    CHECK_INT(mg_set_text(a, -1, "x", 1), MG_ERR_BAD_ARGUMENT);

    /* Many nodes labelled out of order: each keeps its own. */
    enum { N = 200 };
    mg_handle h[N];
    for (int32_t k = 0; k < N; k++) h[k] = MAKE(mg_leaf(k));
    for (int32_t k = N; k-- > 0;) {
        char text[16];
        int len = snprintf(text, sizeof text, "n%d", (int)k);
        CHECK_INT(mg_set_text(h[(k * 7) % N], MG_TEXT_LABEL, text, (size_t)len), MG_OK);
    }
    for (int32_t k = 0; k < N; k++) {
        char text[16];
        int len = snprintf(text, sizeof text, "n%d", (int)k);
        CHECK_INT(mg_get_text(h[(k * 7) % N], MG_TEXT_LABEL, buf, sizeof buf), len);
        CHECK(memcmp(buf, text, (size_t)len) == 0);
    }
    release_all(h, N);

    /* A long text round-trips. */
    size_t big = 1u << 20;
    char *text = malloc(big), *back = malloc(big);
    CHECK(text && back);
    if (text && back) {
        for (size_t k = 0; k < big; k++) text[k] = (char)('a' + k % 26);
        CHECK_INT(mg_set_text(b, MG_TEXT_LABEL, text, big), MG_OK);
        CHECK_INT(mg_get_text(b, MG_TEXT_LABEL, back, big), (int64_t)big);
        CHECK(memcmp(text, back, big) == 0);
    }
    free(text), free(back);
    mg_release(a), mg_release(b);
}

/* ---------------------------------------------------------------- threads --------------- */

/* Every entry point takes the arena lock: threads building, dropping and backpropagating their
 * own graphs while another thread collects all get exact results. */
typedef struct {
    double start;
    double data, grad;
    double data2, grad2; /* after forward() from the leaf doubled */
    int32_t forward_status;
} Work;

static void *build_and_backward(void *arg) {
    Work *work = arg;
    mg_handle x = mg_leaf(work->start);
    mg_handle y = mg_retain(x);
    for (int k = 0; k < 100000; k++) {
        mg_handle next = mg_add(y, x);
        mg_release(y);
        y = next;
    }
    mg_backward(y);
    work->data = mg_data(y);
    work->grad = mg_grad(x);
    /* Re-run the same graph from a doubled leaf, each thread its own graph: exact again. */
    mg_set_data(x, 2.0 * work->start);
    mg_set_grad(x, 0.0);
    for (int k = 0; k < 20; k++) work->forward_status |= mg_forward(y);
    mg_backward(y);
    work->data2 = mg_data(y);
    work->grad2 = mg_grad(x);
    mg_release(y), mg_release(x);
    return NULL;
}

static void test_threads(void) {
    enum { THREADS = 3 };
    pthread_t threads[THREADS];
    Work work[THREADS];
    for (int t = 0; t < THREADS; t++) {
        work[t] = (Work){.start = t + 1.0};
        CHECK_INT(pthread_create(&threads[t], NULL, build_and_backward, &work[t]), 0);
    }
    for (int k = 0; k < 200; k++) CHECK_INT(mg_collect(), MG_OK);
    for (int t = 0; t < THREADS; t++) {
        CHECK_INT(pthread_join(threads[t], NULL), 0);
        CHECK_DOUBLE(work[t].data, (t + 1.0) * 100001);
        CHECK_DOUBLE(work[t].grad, 100001.0);
        CHECK_INT(work[t].forward_status, MG_OK);
        CHECK_DOUBLE(work[t].data2, 2.0 * (t + 1.0) * 100001);
        CHECK_DOUBLE(work[t].grad2, 100001.0);
    }
}

/* ---------------------------------------------------------------- runner ---------------- */

static const struct {
    const char *name;
    void (*run)(void);
} TESTS[] = {
    {"leaf", test_leaf},
    {"each_op", test_each_op},
    {"op_errors", test_op_errors},
    {"backward_error", test_backward_error},
    {"local_backward_and_custom", test_local_backward_and_custom},
    {"retain_release", test_retain_release},
    {"readme_example", test_readme_example},
    {"shared_dag", test_shared_dag},
    {"deep_chain_backward", test_deep_chain_backward},
    {"forward_equals_a_fresh_build", test_forward_equals_a_fresh_build},
    {"forward_touches_only_what_the_root_reaches", test_forward_touches_only_what_the_root_reaches},
    {"forward_errors", test_forward_errors},
    {"forward_after_compaction_and_reuse", test_forward_after_compaction_and_reuse},
    {"forward_deep_chain", test_forward_deep_chain},
    {"growth", test_growth},
    {"reclamation", test_reclamation},
    {"arena_reuse", test_arena_reuse},
    {"reserve_after_compaction", test_reserve_after_compaction},
    {"memory_follows_live_set", test_memory_follows_live_set},
    {"no_resize_storm", test_no_resize_storm},
    {"dead_labels_are_reclaimed", test_dead_labels_are_reclaimed},
    {"labels_through_compaction", test_labels_through_compaction},
    {"headroom", test_headroom},
    {"bad_handles", test_bad_handles},
    {"stale_handles", test_stale_handles},
    {"release_modes", test_release_modes},
    {"reclaim_unowned", test_reclaim_unowned},
    {"bad_arguments", test_bad_arguments},
    {"node_limit", test_node_limit},
    {"mlp", test_mlp},
    {"trace", test_trace},
    {"texts", test_texts},
    {"threads", test_threads},
};

/* Drops every node and shrinks the arena as far as it goes (until mg_collect changes nothing), so
 * each test starts from the same small, empty arena. */
static void settle(void) {
    int64_t cap;
    do {
        cap = mg_capacity();
        CHECK_INT(mg_collect(), MG_OK);
    } while (mg_capacity() != cap);
}

int main(void) {
    int passed = 0, failed = 0;
    for (int t = 0; t < COUNT(TESTS); t++) {
        current_test = TESTS[t].name;
        failed_checks = 0;
        TESTS[t].run();
        /* Every test releases what it made: then nothing is held and nothing survives. */
        CHECK_INT(mg_handle_count(), 0);
        mg_set_node_limit(MAX_NODE_LIMIT);
        settle();
        CHECK_INT(mg_node_count(), 0);
        if (failed_checks) {
            printf("FAIL %s\n", TESTS[t].name);
            failed++;
        } else {
            printf("ok   %s\n", TESTS[t].name);
            passed++;
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
