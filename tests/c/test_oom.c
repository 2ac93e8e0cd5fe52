/* test_oom.c: the C graph core when memory runs out, by fault injection.
 *
 * An allocation failure cannot be provoked through graph.h, so this driver includes graph.c
 * itself with malloc, calloc and realloc redirected to wrappers that fail on request.  It runs
 * a workload once to count its allocations, then once per allocation with that one failing
 * (and, in a second sweep, with it and every later one failing).  Every call must either work
 * or return MG_ERR_NOMEM, the Values held must keep their numbers, and every handle must come
 * back.  Run it with tests/c/run.sh (ASan and UBSan watch for the rest).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static long fail_at = -1;       /* the allocation (counted from 0) that fails; -1: none */
static bool fail_after;         /* and every one after it too */
static long allocations;        /* counted in this run */

static bool failing(void) {
    long n = allocations++;
    return fail_at >= 0 && (n == fail_at || (fail_after && n > fail_at));
}

static void *test_malloc(size_t size) { return failing() ? NULL : malloc(size); }
static void *test_calloc(size_t n, size_t size) { return failing() ? NULL : calloc(n, size); }
static void *test_realloc(void *p, size_t size) {
    return failing() ? NULL : realloc(p, size);
}

#define malloc test_malloc
#define calloc test_calloc
#define realloc test_realloc
#include "graph.c"
#undef malloc
#undef calloc
#undef realloc

/* ---------------------------------------------------------------- the workload ---------- */

static int problems;

static void problem(int line, const char *what, long long value) {
    if (problems++ < 20)
        fprintf(stderr, "test_oom.c:%d: allocation %ld%s fails: %s (%lld)\n", line, fail_at,
                fail_after ? " and on" : "", what, value);
}

/* A maker's result: a handle, or MG_ERR_NOMEM and nothing else. */
#define EXPECT_MADE_OR_NOMEM(h)                                              \
    do {                                                                     \
        if ((h) < 0 && (h) != MG_ERR_NOMEM) problem(__LINE__, #h, (h));      \
    } while (0)

#define EXPECT(cond)                                         \
    do {                                                     \
        if (!(cond)) problem(__LINE__, #cond, 0);            \
    } while (0)

/* Everything graph.h offers that allocates: leaves and ops in a growing chain, labels,
 * compaction (explicit and when the arena is full of garbage), shrinking, mg_trace, mg_mlp,
 * mg_parents, backward and forward; the Values kept must keep their numbers throughout. */
static void workload(void) {
    enum { KEPT = 8 };
    mg_handle x = mg_leaf(2.0);
    EXPECT_MADE_OR_NOMEM(x);
    if (x < 0) return;
    mg_handle kept[KEPT];
    double kept_data[KEPT];
    int nkept = 0;
    mg_handle y = mg_retain(x);
    double y_data = 2.0;
    for (int k = 0; k < 3000; k++) {
        mg_handle next = k % 3 ? mg_add(y, x) : mg_mul_const(y, 1.0);
        EXPECT_MADE_OR_NOMEM(next);
        if (next < 0) continue;
        mg_release(y);
        y = next;
        y_data = k % 3 ? y_data + 2.0 : y_data;
        if (k % 400 == 0 && nkept < KEPT) {
            kept[nkept] = mg_retain(y);
            kept_data[nkept++] = y_data;
        }
        if (k % 300 == 0) {
            int32_t status = mg_set_text(y, MG_TEXT_LABEL, "label", 5);
            EXPECT(status == MG_OK || status == MG_ERR_NOMEM);
        }
        if (k % 700 == 0) {
            int32_t status = mg_collect();
            EXPECT(status == MG_OK || status == MG_ERR_NOMEM);
        }
        if (k % 1000 == 999) { /* garbage enough to fill, compact and shrink the arena */
            mg_handle g = mg_leaf(1.0);
            EXPECT_MADE_OR_NOMEM(g);
            for (int j = 0; j < 20000 && g >= 0; j++) {
                mg_handle m = mg_mul_const(g, 1.0);
                EXPECT_MADE_OR_NOMEM(m);
                mg_release(g);
                g = m;
            }
            if (g >= 0) mg_release(g);
            for (int j = 0; j < 8; j++) {
                int32_t status = mg_collect();
                EXPECT(status == MG_OK || status == MG_ERR_NOMEM);
            }
        }
    }
    EXPECT(mg_data(y) == y_data);
    if (nkept > 0) {
        mg_handle nodes[8192];
        int32_t pos[16384];
        int32_t n = mg_trace(kept[0], 8192, nodes, pos);
        EXPECT((n > 0 && n <= 8192) || n == MG_ERR_NOMEM);
        for (int32_t k = 0; n <= 8192 && k < n; k++) mg_release(nodes[k]);
    }
    mg_handle parents[2];
    int32_t np = mg_parents(y, parents);
    EXPECT(np == 2 || np == MG_ERR_NOMEM);
    for (int32_t k = 0; k < np; k++) mg_release(parents[k]);
    /* MLP(2, [3, 1]) with every weight x, on [x, 0.5] */
    int32_t sizes[] = {2, 3, 1}, nonlin[] = {1, 0};
    mg_handle params[13], inputs[] = {x, -1}, out[1];
    double constants[] = {0.0, 0.5};
    for (int k = 0; k < 13; k++) params[k] = x;
    int32_t status = mg_mlp(2, sizes, nonlin, params, inputs, constants, out);
    EXPECT(status == MG_OK || status == MG_ERR_NOMEM);
    if (status == MG_OK) {
        EXPECT(mg_data(out[0]) == 3 * 2.0 * (2.0 + 2.0 * 2.0 + 2.0 * 0.5) + 2.0);
        mg_release(out[0]);
    }
    /* A handle table full to its capacity (1024 slots, every one live): an op makes its nodes,
     * then needs a new slot for their handle; when that fails it must take the nodes back. */
    enum { FULL_TABLE = 1024 };
    mg_handle many[FULL_TABLE];
    int nmany = 0;
    while (nmany < FULL_TABLE && mg_handle_count() < FULL_TABLE) {
        mg_handle h = mg_leaf(0.5);
        EXPECT_MADE_OR_NOMEM(h);
        if (h < 0) break;
        many[nmany++] = h;
    }
    if (mg_handle_count() == FULL_TABLE) {
        int64_t nodes_before = mg_node_count();
        mg_handle made = mg_add_const(x, 1.0); /* a leaf for 1.0 and the sum: two nodes */
        EXPECT_MADE_OR_NOMEM(made);
        if (made < 0)
            EXPECT(mg_node_count() <= nodes_before); /* (it may have reclaimed garbage too) */
        else
            mg_release(made);
    }
    for (int k = 0; k < nmany; k++) mg_release(many[k]);
    EXPECT(mg_backward(y) == MG_OK); /* backward allocates nothing */
    EXPECT(mg_grad(y) == 1.0);
    /* forward allocates its schedule: it works or fails with nothing changed, and backward
     * after it is right either way. */
    mg_set_data(x, 3.0);
    int32_t forward_status = mg_forward(y);
    EXPECT(forward_status == MG_OK || forward_status == MG_ERR_NOMEM);
    EXPECT(mg_data(x) == 3.0);
    EXPECT(mg_data(y) == (forward_status == MG_OK ? y_data * 1.5 : y_data));
    EXPECT(mg_backward(y) == MG_OK);
    EXPECT(mg_grad(y) == 1.0);
    mg_set_data(x, 2.0); /* back to the numbers the kept Values are checked against */
    int32_t again = mg_forward(y);
    EXPECT(again == MG_OK || (again == MG_ERR_NOMEM && forward_status == MG_ERR_NOMEM));
    EXPECT(mg_data(y) == y_data);
    for (int k = 0; k < nkept; k++) {
        EXPECT(mg_data(kept[k]) == kept_data[k]);
        mg_release(kept[k]);
    }
    mg_release(y);
    mg_release(x);
    EXPECT(mg_handle_count() == 0);
}

/* Frees the whole arena, so that each run starts from nothing. */
static void reset_arena(void) {
    free(A.data), free(A.grad), free(A.lhs), free(A.rhs), free(A.node_handle), free(A.op);
    free(A.handles);
    for (size_t t = 0; t < A.texts_len; t++) free(A.texts[t].text);
    free(A.texts);
    A.data = A.grad = NULL;
    A.lhs = A.rhs = A.node_handle = NULL;
    A.op = NULL;
    A.handles = NULL;
    A.texts = NULL;
    A.len = A.cap = A.trigger = 0;
    A.low_compactions = 0;
    A.shrink_after = SHRINK_AFTER;
    A.text_bytes = 0;
    A.text_budget = TEXT_SLACK;
    A.handles_len = A.handles_cap = A.live_handles = 0;
    A.free_handle = NO_NODE;
    A.texts_len = A.texts_cap = 0;
    free(A.schedule.nodes);
    A.schedule.nodes = NULL;
    A.schedule.len = A.schedule.cap = 0;
    A.schedule.root = -1;
}

int main(void) {
    fail_at = -1;
    allocations = 0;
    workload();
    long total = allocations;
    int passed = 0, failed = 0;
    if (problems || total < 20) {
        fprintf(stderr, "test_oom.c: the workload fails without any failing allocation\n");
        failed++;
    } else {
        passed++;
    }
    reset_arena();
    for (int sweep = 0; sweep < 2; sweep++) {
        problems = 0;
        fail_after = sweep == 1;
        for (fail_at = 0; fail_at < total; fail_at++) {
            allocations = 0;
            workload();
            reset_arena();
        }
        printf("%s %s: %ld allocations, each failing%s\n", problems ? "FAIL" : "ok  ",
               sweep ? "fail_from_each" : "fail_each", total, sweep ? " with all after it" : "");
        problems ? failed++ : passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
