"""cffi builder (out-of-line API mode) for micrograd_c's graph core.

The cdef is read from csrc/graph.h, between its cffi markers, so the header stays the single
contract between C and Python.  setup.py wires this in through ``cffi_modules``.
"""

import os
import re
import sys

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


def compiler_family() -> str:
    """'msvc' or 'gcc': which flag dialect the extension's compiler speaks.

    setuptools builds an extension with the compiler its interpreter was built with: MSVC for
    the python.org and conda Pythons on Windows, whose sys.version says
    "MSC v.1938 ..."; gcc or clang everywhere else, including MSYS2's Python on Windows
    ("GCC ...").  gcc and clang take the same flags."""
    return "msvc" if sys.platform == "win32" and "MSC v." in sys.version else "gcc"


# Forward values must be bit-identical to Python's floats (docs/design.md, "Exactness on each
# compiler"): every + and * rounded on its own, as CPython's float ops are.  So no contraction
# of a*b + c into a fused multiply-add (one rounding instead of two), and no fast-math.
COMPILE_ARGS = {
    "gcc": [
        "-std=c11",  # the C the core is written in (_Static_assert, designated initialisers)
        # clang contracts a*b + c within an expression by default (-ffp-contract=on), and does
        # fuse on arm64 (Apple silicon), where FMA is in the base instruction set; gcc does
        # in its GNU modes.  Off for both, stated rather than left to -std's side effects.
        "-ffp-contract=off",
        "-fno-fast-math",  # comes after CFLAGS, so undoes a -ffast-math / -Ofast put there
    ],
    "msvc": [
        "/std:c11",  # MSVC's default C is C89 with extensions: no _Static_assert
        # /fp:precise is MSVC's default; said here so that it wins over a /fp:fast in the CL
        # environment variable (the later option wins).  Since Visual Studio 2022 (17.0) it
        # does not contract: fusing takes /fp:contract or /fp:fast, and neither is given.
        # Older MSVC contracted under /fp:precise, and has no switch to turn only that off;
        # the preamble refuses those compilers (and /fp:fast, /fp:contract) at build time.
        "/fp:precise",
    ],
}
# The C library's math (tanh, exp, pow): a separate libm on gcc/clang platforms, part of the
# C runtime that MSVC links by itself.
LIBRARIES = {"gcc": ["m"], "msvc": []}


def extra_compile_args(family: str) -> list[str]:
    # MICROGRAD_C_CFLAGS adds flags for a checking build: sanitizers (.ci/sanitize.sh), warnings
    # as errors (.ci/build-checks.sh).  Never -Werror by default: a newer compiler's new warning
    # must not break a user's install.
    return COMPILE_ARGS[family] + os.environ.get("MICROGRAD_C_CFLAGS", "").split()


# cffi releases the GIL around every call.  Our calls are short, and the arena has its own lock,
# so releasing buys no parallelism and costs ~40 ns a call; the wrappers cffi generates after
# this preamble keep the GIL instead.  mg_gil_held() lets the tests verify it.
#
# The preamble is compiled under cffi's Py_LIMITED_API (the module is tagged abi3: one build
# serves every later CPython 3), so it may call only the limited API.  PyGILState_Check() is not
# in it; PyGILState_Ensure() is (stable ABI since 3.2), is safe whether or not the thread holds
# the GIL, and answers the same question: PyGILState_LOCKED means the GIL was already held.
# The #errors stop a build in which the compiler would fuse a*b + c (see COMPILE_ARGS):
# _M_FP_CONTRACT / _M_FP_FAST are MSVC's own macros for /fp:contract and /fp:fast (Visual
# Studio 2022 and later), and older MSVC contracts under /fp:precise.  The preamble is compiled
# with the same flags as csrc/graph.c, so what holds here holds there.
PREAMBLE = r"""
#include "graph.h"
#if defined(_M_FP_CONTRACT) || defined(_M_FP_FAST) || defined(__FAST_MATH__)
#error "micrograd_c must be built without floating-point contraction or fast-math"
#endif
#if defined(_MSC_VER) && !defined(__clang__) && _MSC_VER < 1930
#error "micrograd_c needs Visual Studio 2022 or later: older MSVC fuses a*b + c under /fp:precise"
#endif
#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS {
#define Py_END_ALLOW_THREADS }
int32_t mg_gil_held(void) {
    PyGILState_STATE state = PyGILState_Ensure();
    PyGILState_Release(state);
    return state == PyGILState_LOCKED;
}
"""

FAMILY = compiler_family()
ffibuilder = FFI()
ffibuilder.cdef(read_cdef())
ffibuilder.set_source(
    "micrograd_c._graph",
    PREAMBLE,
    sources=[os.path.join("csrc", "graph.c")],
    include_dirs=["csrc"],
    depends=[HEADER, os.path.join("csrc", "lock.h")],
    extra_compile_args=extra_compile_args(FAMILY),
    extra_link_args=os.environ.get("MICROGRAD_C_LDFLAGS", "").split(),
    libraries=LIBRARIES[FAMILY],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
