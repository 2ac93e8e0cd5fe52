"""One table: each benchmark case, micrograd against micrograd_c, and the target it is held to.

    python bench/report.py                          # run the full suite (a few minutes), report
    python bench/report.py --benchmark-json F.json  # report a saved pytest-benchmark run
    python bench/report.py --quick                  # small sizes: a smoke run, targets moot

Times are medians over a case's rounds.  The table is printed as Markdown; the numbers behind
it go to --out (bench/results.json by default, git-ignored) and, when the suite was run here,
pytest-benchmark's own JSON to bench/results-raw.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent

Case = dict[str, Any]  # one benchmark of pytest-benchmark's JSON


@dataclass
class Row:
    case: str
    micrograd: str
    micrograd_c: str
    ratio: str
    target: str
    met: bool | None  # None: the case did not run, or failed its checks


# -- reading pytest-benchmark's JSON -----------------------------------------------------------


def find(cases: list[Case], test: str, **params: Any) -> Case | None:
    """The benchmark of `test` whose parameters include `params` (engine="..." included)."""
    for case in cases:
        if case["name"].split("[")[0] != test:
            continue
        have = {**(case.get("params") or {}), **case["extra_info"]}
        if all(have.get(k) == v for k, v in params.items()):
            return case
    return None


def passed(case: Case | None) -> bool:
    return case is not None and case["extra_info"].get("passed") is True


def per_unit(case: Case) -> float:
    """Median seconds per op / node / step."""
    return case["stats"]["median"] / case["extra_info"]["count"]


def both(cases: list[Case], test: str, **params: Any) -> tuple[Case | None, Case | None]:
    return (find(cases, test, engine="micrograd", **params),
            find(cases, test, engine="micrograd_c", **params))


# -- formatting --------------------------------------------------------------------------------


def ns(seconds: float) -> str:
    return f"{seconds * 1e9:,.1f} ns" if seconds < 1e-7 else f"{seconds * 1e9:,.0f} ns"


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.3g} ms" if seconds < 1 else f"{seconds * 1e3:,.0f} ms"


def times(ratio: float) -> str:
    return f"{ratio:,.0f}x" if ratio >= 100 else f"{ratio:,.1f}x"


def show(case: Case | None, fmt: Callable[[Case], str]) -> str:
    if case is None:
        return "not run"
    return fmt(case) + ("" if passed(case) else " (FAILED its checks)")


# -- the rows ----------------------------------------------------------------------------------


def speedup_row(label: str, mg: Case | None, mgc: Case | None,
                fmt: Callable[[float], str], at_least: float) -> Row:
    """A row whose target is 'micrograd_c at least `at_least` times faster'."""
    ratio = per_unit(mg) / per_unit(mgc) if mg and mgc else None
    return Row(label, show(mg, lambda c: fmt(per_unit(c))), show(mgc, lambda c: fmt(per_unit(c))),
               times(ratio) if ratio else "-", f">= {at_least:g}x faster",
               None if ratio is None or not (passed(mg) and passed(mgc)) else ratio >= at_least)


def op_rows(cases: list[Case]) -> list[Row]:
    rows = []
    for operand, what in (("value", "Values"), ("float", "floats")):
        for gc_on in ("on", "off"):
            mg, mgc = both(cases, "test_op", operand=operand, gc_on=gc_on)
            count = (mgc or mg or {"extra_info": {"count": 0}})["extra_info"]["count"]
            rows.append(speedup_row(f"op: {count:,} ops x = x*b + c, b and c {what}, GC {gc_on} "
                                    "(per op)", mg, mgc, ns, 3.5))
    return rows


def backward_row(cases: list[Case]) -> Row:
    mg, mgc = both(cases, "test_backward")
    nodes = (mgc or mg or {"extra_info": {"count": 0}})["extra_info"]["count"]
    limit = 5e-9
    met = per_unit(mgc) <= limit if passed(mgc) and mgc else None
    ratio = times(per_unit(mg) / per_unit(mgc)) if mg and mgc else "-"
    return Row(f"backward: one backward() over a {nodes:,}-node graph (per node)",
               show(mg, lambda c: ns(per_unit(c))), show(mgc, lambda c: ns(per_unit(c))), ratio,
               "<= 5 ns per node", met)


def mlp_rows(cases: list[Case]) -> list[Row]:
    rows = []
    for gc_on, at_least in (("on", 400), ("off", 40)):
        mg, mgc = both(cases, "test_mlp_step", gc_on=gc_on)
        points = (mgc or mg or {"extra_info": {"points": 0}})["extra_info"]["points"]
        rows.append(speedup_row(f"mlp_step: moons training step, {points} points, GC {gc_on}",
                                mg, mgc, ms, at_least))
    return rows


def deep_rows(cases: list[Case]) -> list[Row]:
    mg, mgc = both(cases, "test_deep_recursion_limit")
    depth = (mgc or mg or {"extra_info": {"count": 2}})["extra_info"]["count"] - 2

    def outcome(case: Case) -> str:
        result = case["extra_info"]["outcome"]
        return "RecursionError" if result != "ok" else ms(case["stats"]["median"])

    rows = [Row(f"deep: backward() of a {depth:,}-deep chain", show(mg, outcome),
                show(mgc, outcome), "-", "micrograd_c backprops it",
                passed(mgc) and mgc["extra_info"]["outcome"] == "ok" if mgc else None)]
    for case in sorted((c for c in cases if c["name"].startswith("test_deep_chain[")),
                       key=lambda c: c["extra_info"]["count"]):
        depth = case["extra_info"]["count"] - 2
        target = "a 10M-deep chain backprops" if depth >= 10**7 else "-"
        rows.append(Row(f"deep: backward() of a {depth:,}-deep chain", "not tried (RecursionError)",
                        show(case, lambda c: f"{ms(c['stats']['median'])} "
                                             f"({ns(per_unit(c))}/node)"),
                        "-", target, passed(case) if depth >= 10**7 else None))
    return rows


def memory_rows(cases: list[Case]) -> list[Row]:
    mg, mgc = both(cases, "test_memory_moons_graph")
    nodes = (mgc or mg or {"extra_info": {"nodes": 0}})["extra_info"]["nodes"]

    def micrograd_c_bytes(case: Case) -> str:
        info = case["extra_info"]
        proxies = info["bytes_per_node"] - info["arena_bytes_per_node"]
        return f"{info['bytes_per_node']:.1f} B ({info['arena_bytes_per_node']} arena + " \
               f"{proxies:.2f} Python)"

    ratio = (times(mg["extra_info"]["bytes_per_node"] / mgc["extra_info"]["bytes_per_node"])
             if mg and mgc else "-")
    rows = [Row(f"memory: bytes per node of the moons graph ({nodes:,} nodes)",
                show(mg, lambda c: f"{c['extra_info']['bytes_per_node']:.0f} B"),
                show(mgc, micrograd_c_bytes), ratio, "<= 32 B per node in the arena",
                mgc["extra_info"]["arena_bytes_per_node"] <= 32 if passed(mgc) and mgc else None)]

    flat = find(cases, "test_memory_flat")
    met = None
    text = "not run"
    if flat is not None:
        samples = flat["extra_info"]["samples"]
        first, last = samples[0], samples[-1]
        # Flat: after the first tenth of the steps nothing grows, the arena not at all and the
        # process by less than 1 MiB (the allocator's page-level noise).
        rss_flat = first["rss"] is None or last["rss"] - first["rss"] < 2**20
        met = passed(flat) and last["capacity"] <= first["capacity"] and rss_flat
        rss = ("" if first["rss"] is None else
               f", RSS {first['rss'] / 2**20:,.1f} -> {last['rss'] / 2**20:,.1f} MiB")
        text = show(flat, lambda c: f"arena {first['capacity']:,} -> {last['capacity']:,} "
                                    f"slots{rss} (steps {first['step']:,} -> {last['step']:,})")
    steps = flat["extra_info"]["count"] if flat else 0
    rows.append(Row(f"memory: {steps:,} training steps", "not tried (~20 min)", text, "-",
                    "flat", met))
    return rows


def rows_of(cases: list[Case]) -> list[Row]:
    return [*op_rows(cases), backward_row(cases), *mlp_rows(cases), *deep_rows(cases),
            *memory_rows(cases)]


# -- output ------------------------------------------------------------------------------------


def markdown(rows: list[Row]) -> str:
    header = ["case", "micrograd", "micrograd_c", "ratio", "target", "met?"]
    lines = [header, ["---"] * len(header)]
    for r in rows:
        met = {True: "met", False: "MISSED", None: "-"}[r.met]
        lines.append([r.case, r.micrograd, r.micrograd_c, r.ratio, r.target, met])
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def machine_text(data: dict[str, Any]) -> str:
    info = data["machine_info"].get("micrograd_c_bench", {})
    commit = data.get("commit_info", {})
    dirty = " (with uncommitted changes)" if commit.get("dirty") else ""
    return (f"Machine: {info.get('cpu_model', '?')}, {info.get('cores', '?')} cores, "
            f"{info.get('python', data['machine_info'].get('python_version', '?'))}; "
            f"commit {commit.get('id', '?')[:10]}{dirty}; {data.get('datetime', '?')}; "
            f"{info.get('sizes', '?')} sizes; medians")


def summary(data: dict[str, Any], rows: list[Row]) -> dict[str, Any]:
    keep = ("min", "median", "mean", "stddev", "rounds")
    return {
        "machine": data["machine_info"].get("micrograd_c_bench", {}),
        "commit": data.get("commit_info", {}),
        "datetime": data.get("datetime"),
        "rows": [asdict(r) for r in rows],
        "cases": [{"name": c["name"], "group": c["group"], "params": c.get("params"),
                   "extra_info": c["extra_info"],
                   "stats": {k: c["stats"][k] for k in keep}} for c in data["benchmarks"]],
    }


def run_suite(raw: Path, quick: bool) -> int:
    command = [sys.executable, "-m", "pytest", str(BENCH), "-q", "-p", "no:cacheprovider",
               f"--benchmark-json={raw}", "--benchmark-columns=min,median,mean,rounds"]
    if quick:
        command.append("--bench-quick")
    return subprocess.run(command, cwd=ROOT).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmark-json", type=Path,
                        help="report this pytest-benchmark JSON instead of running the suite")
    parser.add_argument("--quick", action="store_true", help="run at small sizes (a smoke run)")
    parser.add_argument("--out", type=Path, default=BENCH / "results.json",
                        help="where the numbers go (default: bench/results.json)")
    args = parser.parse_args(argv)

    status = 0
    raw = args.benchmark_json
    if raw is None:
        raw = BENCH / "results-raw.json"
        status = run_suite(raw, args.quick)
        if not raw.exists():
            print("the suite wrote no results", file=sys.stderr)
            return status or 1
    data = json.loads(raw.read_text(encoding="utf-8"))
    rows = rows_of(data["benchmarks"])
    print()
    print(machine_text(data))
    print()
    print(markdown(rows))
    args.out.write_text(json.dumps(summary(data, rows), indent=1) + "\n", encoding="utf-8")
    print(f"\nnumbers saved in {args.out}")
    if status:
        print(f"the suite FAILED (pytest exit status {status}): see above", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
