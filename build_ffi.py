"""cffi builder (out-of-line API mode) for micrograd_c's graph core.

The cdef is read from csrc/graph.h, between its cffi markers, so the header stays the single
contract between C and Python.  setup.py wires this in through ``cffi_modules``.
"""

import os
import re

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join("csrc", "graph.h")


def read_cdef() -> str:
    with open(os.path.join(HERE, HEADER), encoding="utf-8") as f:
        text = f.read()
    match = re.search(r"/\* cffi-cdef-begin \*/(.*)/\* cffi-cdef-end \*/", text, re.S)
    if match is None:
        raise RuntimeError(f"{HEADER} lost its cffi-cdef markers")
    return match.group(1)


def extra_compile_args() -> list[str]:
    # -ffp-contract=off: no fused multiply-add, so every float operation rounds as Python's does
    # (bit-identical forward values and gradients).  MICROGRAD_C_CFLAGS adds flags such as
    # sanitizers for a checking build.
    args = ["-std=c11", "-ffp-contract=off", "-fno-fast-math"]
    return args + os.environ.get("MICROGRAD_C_CFLAGS", "").split()


# cffi releases the GIL around every call.  Our calls are short, and the arena has its own lock,
# so releasing buys no parallelism and costs ~40 ns a call; the wrappers cffi generates after
# this preamble keep the GIL instead.  mg_gil_held() lets the package verify it at import.
PREAMBLE = r'''
#include "graph.h"
#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS {
#define Py_END_ALLOW_THREADS }
int32_t mg_gil_held(void) { return PyGILState_Check(); }
'''

ffibuilder = FFI()
ffibuilder.cdef(read_cdef())
ffibuilder.set_source(
    "micrograd_c._graph",
    PREAMBLE,
    sources=[os.path.join("csrc", "graph.c")],
    include_dirs=["csrc"],
    depends=[HEADER],
    extra_compile_args=extra_compile_args(),
    extra_link_args=os.environ.get("MICROGRAD_C_LDFLAGS", "").split(),
    libraries=["m"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
