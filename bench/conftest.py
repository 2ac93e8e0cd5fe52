"""pytest wiring of the benchmark suite: quick or full sizes, the engine parameter, a clean
slate per case, and the machine facts saved with the timings.

Full mode (the default) runs the sizes the targets are stated for.  Quick mode, for CI, runs
every case once at small sizes and checks only that both engines computed the same thing; it is
on with `--benchmark-disable` (pytest-benchmark then calls each benchmarked function once) or
with `--bench-quick` (small sizes, still timed: a fast smoke run of report.py).
"""

from __future__ import annotations

import gc
import os
import platform
from collections.abc import Generator
from typing import Any

import pytest

from micrograd_c._core import lib

from mgbench import ENGINES, FULL, QUICK, Agreement, Engine, Sizes


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--bench-quick",
        action="store_true",
        help="micrograd_c benchmarks at small sizes (implied by --benchmark-disable)",
    )


def sizes_for(config: pytest.Config) -> Sizes:
    quick = config.getoption("--bench-quick") or config.getoption("benchmark_disable")
    return QUICK if quick else FULL


def pytest_report_header(config: pytest.Config) -> str:
    mode = "quick" if sizes_for(config) is QUICK else "full"
    return f"micrograd_c benchmarks: {mode} sizes {sizes_for(config)}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test taking `engine` runs once per engine; the parameter is the engine's name, which
    # pytest-benchmark writes into its JSON, where report.py pairs the two runs of a case.
    if "engine" in metafunc.fixturenames:
        metafunc.parametrize("engine", list(ENGINES), indirect=True)
    if "depth" in metafunc.fixturenames:
        metafunc.parametrize("depth", sizes_for(metafunc.config).deep)


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Engine:
    return ENGINES[request.param]


@pytest.fixture
def sizes(request: pytest.FixtureRequest) -> Sizes:
    return sizes_for(request.config)


@pytest.fixture(autouse=True)
def clean_slate() -> None:
    """Each case starts without the garbage of the cases before: Python's, and the arena's
    (which gives back half its slots per collection, so collect until it stops shrinking)."""
    gc.collect()
    while True:
        capacity = lib.mg_capacity()
        lib.mg_collect()
        if lib.mg_capacity() == capacity:
            break


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo
) -> Generator[None, Any, None]:
    # pytest-benchmark saves a case's timings even when a check after them fails; mark which
    # cases passed their checks, so report.py never counts a wrong run as a met target.
    outcome = yield
    report = outcome.get_result()
    benchmark = getattr(item, "funcargs", {}).get("benchmark")
    if report.when == "call" and benchmark is not None:
        benchmark.extra_info["passed"] = report.passed


@pytest.fixture(scope="session")
def agreement() -> Agreement:
    return Agreement()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    # What report.py prints as "the machine", saved with the timings it belongs to.
    machine_info["micrograd_c_bench"] = {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sizes": "quick" if sizes_for(config) is QUICK else "full",
        # Other processes on a shared machine slow the timings down: say how busy it was.
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }
