"""The mutation check: plants each mutant of tests/mutants/mutants.py, one at a time, in a
scratch copy of the tree, and fails if the test suite does not catch every one of them.

    python tests/mutants/run.py              # every mutant; exit status 1 if any survives
    python tests/mutants/run.py --list       # the mutants, checking that each still applies
    python tests/mutants/run.py --only NAME [NAME ...]

The working tree is never touched: the tree (uncommitted changes included) is copied to a
temporary directory, where the extension is rebuilt after each C mutant.  A mutant is caught
("killed") when the fast part of the Python suite fails (pytest -x: the first failure ends the
run) or, for a C mutant the Python suite misses, when the C drivers (tests/c/run.sh, under
ASan/UBSan) fail.  The unmutated copy must pass both first, or nothing is measured.
Run it from the project's virtual environment (the one `pip install -e ".[dev]"` made).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from mutants import MUTANTS, Mutant  # noqa: E402

# The fast part of the suite: everything but the tests marked slow and the demo/examples
# scripts (which run whole programs in subprocesses and test the same core again).  The files
# that are quick and reach every op go first: with -x, a caught mutant costs only the tests
# up to the first failure; then the rest of tests/, by name.
PYTEST_ARGS = ["-x", "-q", "-p", "no:cacheprovider", "-m", "not slow"]
LEFT_OUT = {"test_demo.py", "test_examples.py"}
FIRST = [
    "test_api.py",
    "test_core.py",
    "test_handles.py",
    "test_fresh_arena.py",
    "test_nn_edges.py",
    "test_errors.py",
    "test_golden.py",
    "test_tanh_exp.py",
    "test_forward.py",
    "test_finalizers.py",
    "test_nn.py",
    "test_viz.py",
    "test_bad_input.py",
    "test_differential.py",
]
TIMEOUT = 1800  # seconds for one pytest run: a mutant that hangs the suite counts as caught


def copy_tree(dest: Path) -> None:
    """The files git knows of (tracked, or new and not ignored), as they are on disk now."""
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=True,
        capture_output=True,
    ).stdout
    for name in filter(None, listing.decode().split("\0")):
        src = ROOT / name
        if src.is_file():  # (a file deleted but not yet committed is listed too)
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def build(tree: Path) -> None:
    """Compiles the extension into tree/micrograd_c.  cffi's compile() reads setup config
    from its working directory, so it runs in tree/.build, beside a link to csrc."""
    out = tree / ".build"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    (out / "csrc").symlink_to(tree / "csrc")
    for old in (tree / "micrograd_c").glob("_graph*.so"):
        old.unlink()
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import build_ffi; "
        "print(build_ffi.ffibuilder.compile(tmpdir='.'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tree)], cwd=out, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"the extension did not build:\n{done.stdout}\n{done.stderr}")
    so = Path(out / done.stdout.strip().splitlines()[-1])
    shutil.copy2(so, tree / "micrograd_c" / so.name)


def test_files(tree: Path) -> list[str]:
    """The suite's files, FIRST first (given a directory, pytest would sort them by name)."""
    names = [name for name in FIRST if (tree / "tests" / name).exists()]
    names += sorted(
        p.name
        for p in (tree / "tests").glob("test_*.py")
        if p.name not in names and p.name not in LEFT_OUT
    )
    return [f"tests/{name}" for name in names]


def run_pytest(tree: Path) -> tuple[bool, str]:
    """(passed, what failed first)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pytest", *PYTEST_ARGS, *test_files(tree)],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        return False, f"pytest timed out after {TIMEOUT} s"
    if done.returncode == 0:
        return True, ""
    failed = [
        line.split(" - ")[0]
        for line in done.stdout.splitlines()
        if line.startswith(("FAILED ", "ERROR "))
    ]
    if failed:
        return False, failed[0]
    tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
    return False, f"pytest exit status {done.returncode}: " + " | ".join(tail)


def run_c_drivers(tree: Path) -> tuple[bool, str]:
    done = subprocess.run(
        ["bash", str(tree / "tests" / "c" / "run.sh")],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if done.returncode == 0:
        return True, ""
    lines = (done.stdout + done.stderr).strip().splitlines()
    failing = [line for line in lines if "FAIL" in line or "ERROR" in line or "error:" in line]
    return False, "C drivers: " + (failing[0] if failing else lines[-1] if lines else "failed")


def mutated(text: str, mutant: Mutant) -> str:
    """text with the mutant planted; LookupError if its snippet is not there exactly once."""
    count = text.count(mutant.snippet)
    if count != 1:
        raise LookupError(
            f"mutant {mutant.name}: its snippet occurs {count} times in {mutant.path}, not once; "
            f"the code moved: update tests/mutants/mutants.py\n{mutant.snippet}"
        )
    return text.replace(mutant.snippet, mutant.replacement)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these mutants")
    parser.add_argument("--list", action="store_true", help="list the mutants and check them")
    args = parser.parse_args()

    chosen = MUTANTS
    if args.only:
        unknown = set(args.only) - {m.name for m in MUTANTS}
        if unknown:
            parser.error(f"no mutant named {', '.join(sorted(unknown))}")
        chosen = [m for m in MUTANTS if m.name in args.only]
    try:  # every snippet must apply before anything runs
        for mutant in chosen:
            mutated((ROOT / mutant.path).read_text(), mutant)
    except LookupError as e:
        print(e, file=sys.stderr)
        return 2
    if args.list:
        for mutant in chosen:
            print(f"{mutant.name:38} {mutant.path:24} {mutant.why}")
        return 0

    # Python mutants first: they share the unmutated build; each C mutant rebuilds.
    chosen = sorted(chosen, key=lambda m: m.path.startswith("csrc/"))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="micrograd_c-mutants-") as scratch:
        tree = Path(scratch)
        copy_tree(tree)
        build(tree)
        check = subprocess.run(
            [sys.executable, "-c", "import micrograd_c._graph as g; print(g.__file__)"],
            cwd=tree,
            env=dict(os.environ, PYTHONPATH=str(tree)),
            capture_output=True,
            text=True,
        )
        if not check.stdout.startswith(str(tree)):
            raise SystemExit(f"the scratch copy's extension is not the one imported: {check}")
        t = time.monotonic()
        for name, (ok, failure) in (
            ("pytest", run_pytest(tree)),
            ("C drivers", run_c_drivers(tree)),
        ):
            if not ok:
                raise SystemExit(f"the unmutated tree fails its {name} ({failure}): fix that first")
        print(f"unmutated tree: suite and C drivers pass ({time.monotonic() - t:.0f} s)")

        survivors = []
        for mutant in chosen:
            t = time.monotonic()
            path = tree / mutant.path
            original = path.read_text()
            is_c = mutant.path.startswith("csrc/")
            try:
                path.write_text(mutated(original, mutant))
                if is_c:
                    build(tree)
                caught, failure = run_pytest(tree)
                caught = not caught
                if not caught and is_c:
                    passed, failure = run_c_drivers(tree)
                    caught = not passed
            finally:
                path.write_text(original)
            verdict = f"caught by {failure}" if caught else "SURVIVED"
            print(f"{mutant.name:38} {verdict}  ({time.monotonic() - t:.0f} s)", flush=True)
            if not caught:
                survivors.append(mutant)

    elapsed = time.monotonic() - started
    print(f"\n{len(chosen) - len(survivors)} of {len(chosen)} mutants caught in {elapsed:.0f} s")
    for mutant in survivors:
        print(f"SURVIVED: {mutant.name} ({mutant.path}): {mutant.why}")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
