/* replay.c: runs fuzz_graph.c's target on the given files without libFuzzer, so that any C
 * compiler can replay the corpus (.ci/coverage.sh counts its line coverage of graph.c this way).
 *   usage: replay FILE...   exits non-zero when a file cannot be read; a broken invariant aborts
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
    static uint8_t input[1 << 16]; /* the fuzzer's inputs are at most 2048 bytes (.ci/fuzz.sh) */
    for (int k = 1; k < argc; k++) {
        FILE *f = fopen(argv[k], "rb");
        if (!f) {
            perror(argv[k]);
            return 1;
        }
        size_t size = fread(input, 1, sizeof input, f);
        fclose(f);
        LLVMFuzzerTestOneInput(input, size);
    }
    printf("replayed %d inputs\n", argc - 1);
    return 0;
}
