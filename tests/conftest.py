"""Shared fixtures for the micrograd_c core tests.

micrograd (PyPI micrograd==0.1.0) is the reference: every behaviour micrograd has, micrograd_c
must have too, so most tests build the same program with both engines and compare.
"""

import gc

import pytest
from micrograd.engine import Value as MValue

from micrograd_c._core import lib
from micrograd_c.engine import Value as CValue

MAX_NODE_LIMIT = 2**31 - 1


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "slow: takes several seconds (still part of the default run; deselect with -m 'not slow')",
    )


@pytest.fixture(params=[MValue, CValue], ids=["micrograd", "micrograd_c"])
def V(request):
    """Runs a test once against micrograd and once against micrograd_c."""
    return request.param


def settle_arena():
    """Drops every unreachable Python Value and every unreachable node, then shrinks the arena
    as far as the live set allows (each mg_collect halves the capacity at most once)."""
    gc.collect()
    while True:
        before = lib.mg_capacity()
        assert lib.mg_collect() == 0
        if lib.mg_capacity() == before:
            return


@pytest.fixture
def settled():
    """A quiet arena before the test and a shrunk one after it (big tests leave big arenas)."""
    settle_arena()
    yield
    lib.mg_set_node_limit(MAX_NODE_LIMIT)
    settle_arena()


@pytest.fixture
def empty_arena():
    """An arena with no node at all, so the test's first node is node 0: the end of every
    downward sweep (backward, trace, compaction), which a long-running process otherwise never
    reaches.  A Value that outlives its test (a module-level Value, say) fails the fixture
    rather than skipping the case: the suite must not keep Values alive."""
    gc.collect()
    assert lib.mg_collect() == 0
    assert lib.mg_node_count() == 0, (
        f"{lib.mg_node_count()} nodes ({lib.mg_handle_count()} handles) outlive their tests"
    )
    yield
    settle_arena()


def readme_example(Value, backward=True):
    """micrograd's README example, built with either engine's Value: its nodes by name."""
    a = Value(-4.0)
    b = Value(2.0)
    c = a + b
    d = a * b + b**3
    c += c + 1
    c += 1 + c + (-a)
    d += d * 2 + (b + a).relu()
    d += 3 * d + (b - a).relu()
    e = c - d
    f = e**2
    g = f / 2.0
    g += 10.0 / f
    if backward:
        g.backward()
    return {"a": a, "b": b, "c": c, "d": d, "e": e, "f": f, "g": g}


# A Value v and a plain number k, in every arrangement micrograd supports.
FORMS_WITH_CONSTANT = {
    "v+k": lambda v, k: v + k,
    "k+v": lambda v, k: k + v,
    "v*k": lambda v, k: v * k,
    "k*v": lambda v, k: k * v,
    "v-k": lambda v, k: v - k,
    "k-v": lambda v, k: k - v,
    "v/k": lambda v, k: v / k,
    "k/v": lambda v, k: k / v,
}


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run_demo_headless(module: str, args: list[str], cwd, picture: str) -> None:
    """Runs `python -m module args` as a user would, with no display and a GUI backend set
    (the demo must not use it), and checks it wrote its picture into cwd."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    env["MPLBACKEND"] = "TkAgg"
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (cwd / picture).read_bytes()[:8] == PNG_MAGIC  # default path: the cwd


def demo_dependencies_imported_by(*modules: str) -> str:
    """Which of the demos' heavy dependencies importing `modules` pulls in, printed as a list
    by a fresh interpreter ('[]': none)."""
    import subprocess
    import sys

    check = (
        f"import sys, {', '.join(modules)}; "
        "print(sorted({'sklearn', 'matplotlib', 'tqdm', 'numpy'} & sys.modules.keys()))"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
