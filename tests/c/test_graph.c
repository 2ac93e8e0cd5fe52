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
#define COUNT(array) ((mg_handle)(sizeof(array) / sizeof *(array)))

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

static void release_all(const mg_handle *handles, mg_handle n) {
    for (int32_t k = 0; k < n; k++) mg_release(handles[k]);
}

/* The node's parents (0..2) as new handles; the caller releases them. */
static mg_handle parents(mg_handle h, mg_handle out[2]) {
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
    mg_handle n = parents(out, p);
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
    mg_handle out[16], n = 0;

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
    out[n] = MAKE(mg_pow(a, 3.0, 1));
    check_op(__LINE__, out[n], MG_POWI, 8.0, a, 12.0, -1, 0.0);
    CHECK_DOUBLE(mg_exponent(out[n++]), 3.0);
    mg_set_grad(a, 0.0);
    out[n] = MAKE(mg_pow(a, 0.5, 0));
    check_op(__LINE__, out[n], MG_POW, 1.4142135623730951, a, 0.3535533905932738, -1, 0.0);
    CHECK_DOUBLE(mg_exponent(out[n++]), 0.5);
    mg_set_grad(a, 0.0);
    out[n] = MAKE(mg_pow(m, 3.0, 0)); /* a negative base with a whole float exponent is real */
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
    out[n] = MAKE(mg_pow(ten, -400.0, 1));
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
    CHECK_INT(mg_pow(zero, -1.0, 1), MG_ERR_ZERO_POWER);  /* 0.0 ** -1 */
    CHECK_INT(mg_pow(zero, -0.5, 0), MG_ERR_ZERO_POWER);  /* 0.0 ** -0.5 */
    CHECK_INT(mg_pow(ten, 400.0, 1), MG_ERR_POW_RANGE);   /* 10.0 ** 400 */
    CHECK_INT(mg_pow(minus8, 1.0 / 3.0, 0), MG_ERR_COMPLEX_POWER); /* (-8.0) ** (1/3) */
    CHECK_INT(mg_exp(big), MG_ERR_EXP_RANGE);             /* math.exp(1000.0) */
    CHECK_INT(mg_node_count(), nodes);
    CHECK_INT(mg_handle_count(), handles);
    /* The arena is fine afterwards. */
    mg_handle ok = MAKE(mg_pow(ten, 2.0, 1));
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
    mg_handle y = MAKE(mg_pow(x, 0.5, 0));
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
    mg_handle n = mg_trace(root, 256, nodes, pos);
    CHECK(n > 0 && n <= 256);
    if (n <= 0 || n > 256) return;
    CHECK_INT(mg_zero_grads(nodes, n), MG_OK);
    release_all(nodes, n);
}

static mg_handle kept[64], nkept;

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
    mg_handle d = KEEP(mg_add(ab, KEEP(mg_pow(b, 3.0, 1))));
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
    mg_handle f = KEEP(mg_pow(e, 2.0, 1));                      /* f = e**2 */
    mg_handle g = KEEP(mg_mul_const(f, 0.5));                   /* g = f / 2.0 */
    t = KEEP(mg_mul_const(KEEP(mg_pow(f, -1.0, 1)), 10.0));  /* g += 10.0 / f */
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
    mg_handle e = MAKE(mg_pow(d, 2.0, 1));
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
    mg_handle n = mg_trace(g, 16, nodes_g, pos);
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
    CHECK_FAILS(mg_pow(bad, 2.0, 1), MG_ERR_BAD_HANDLE);
    CHECK_FAILS(mg_pow(bad, 0.5, 0), MG_ERR_BAD_HANDLE);
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
    mg_handle traced = mg_trace(bad, 4, out, pos);
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
    mg_handle n = 0, status = 0;
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
    CHECK_INT(mg_pow(held[1], 2.0, 1), MG_ERR_NODE_LIMIT);
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
    mg_handle fill[LIMIT], filled = 0;
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
static mg_handle neuron_by_ops(const mg_handle *w, mg_handle nin, const mg_handle *x, const double *c,
                             bool nonlin) {
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
    mg_handle params[256], nparams = 0, nout = sizes[nlayers];
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
    mg_handle p = MAKE(mg_pow(s, 2.0, 1));     /* its exponent leaf is hidden */
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
        mg_handle count = parents(nodes[k], par);
        for (int32_t q = 0; q < 2; q++) {
            mg_handle at = pos[2 * k + q];
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
    {"growth", test_growth},
    {"reclamation", test_reclamation},
    {"arena_reuse", test_arena_reuse},
    {"bad_handles", test_bad_handles},
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
