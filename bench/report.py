"""One table: each benchmark case, micrograd against micrograd_c, and the target it is held to.

    python bench/report.py                          # run the full suite (a few minutes), report
    python bench/report.py --benchmark-json F.json  # report a saved pytest-benchmark run
    python bench/report.py --quick                  # small sizes: a smoke run, targets moot

Times are each case's fastest round: the machine may be shared, and other work only ever adds
time (the median, mean and round count are saved too).  The table is printed as Markdown; the
numbers behind it go to --out (bench/results.json by default, git-ignored) and, when the suite
was run here, pytest-benchmark's own JSON to bench/results-raw.json.
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


STAT = "min"  # the statistic the table shows


def seconds(case: Case) -> float:
    return case["stats"][STAT]


def per_unit(case: Case) -> float:
    """Seconds per op / node / step."""
    return seconds(case) / case["extra_info"]["count"]


def both(cases: list[Case], test: str, **params: Any) -> tuple[Case | None, Case | None]:
    return (
        find(cases, test, engine="micrograd", **params),
        find(cases, test, engine="micrograd_c", **params),
    )


def size(key: str, *cases: Case | None) -> str:
    """A size the cases ran at (extra_info[key]), for a row's label."""
    for case in cases:
        if case is not None:
            return f"{case['extra_info'][key]:,}"
    return "?"


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


def checked(*cases: Case | None) -> bool:
    """Whether a target can be judged: every case ran and passed its checks."""
    return all(passed(case) for case in cases)


def speedup_row(
    label: str, mg: Case | None, mgc: Case | None, fmt: Callable[[float], str], at_least: float
) -> Row:
    """A row whose target is 'micrograd_c at least `at_least` times faster'."""
    ratio = per_unit(mg) / per_unit(mgc) if mg and mgc else None
    return Row(
        label,
        show(mg, lambda c: fmt(per_unit(c))),
        show(mgc, lambda c: fmt(per_unit(c))),
        times(ratio) if ratio else "-",
        f">= {at_least:g}x faster",
        ratio >= at_least if ratio and checked(mg, mgc) else None,
    )


def op_rows(cases: list[Case]) -> list[Row]:
    rows = []
    for operand, what in (("value", "Values"), ("float", "floats")):
        for gc_mode in ("gc_on", "gc_off"):
            mg, mgc = both(cases, "test_op", operand=operand, gc_mode=gc_mode)
            label = (
                f"op: {size('count', mg, mgc)} ops x = x*b + c, b and c {what}, "
                f"GC {gc_mode[3:]} (per op)"
            )
            rows.append(speedup_row(label, mg, mgc, ns, 3.5))
    return rows


def numpy_rows(cases: list[Case]) -> list[Row]:
    """Each numpy-scalar case against the Python number of its kind (issue #12: <= 1.2x)."""
    rows = []
    expressions = sorted(
        {c["params"]["expression"] for c in cases if c["name"].startswith("test_numpy_scalar")},
        key=lambda e: ("(" in e, e),
    )
    for expression in expressions:
        ratios, times_text = [], []
        for numpy_kind, plain in (("numpy.float64", "float"), ("numpy.int64", "int")):
            np_case = find(cases, "test_numpy_scalar", expression=expression, number=numpy_kind)
            py_case = find(cases, "test_numpy_scalar", expression=expression, number=plain)
            if np_case is None or py_case is None:
                continue
            ratio = per_unit(np_case) / per_unit(py_case)
            ratios.append((ratio, checked(np_case, py_case)))
            times_text.append(
                f"{numpy_kind} {ns(per_unit(np_case))} vs {plain} {ns(per_unit(py_case))} "
                f"({ratio:.2f}x)"
            )
        rows.append(
            Row(
                f"numpy: `{expression}` with a numpy scalar x, against a Python number (per op)",
                "-",
                "; ".join(times_text) or "not run",
                "-",
                "<= 1.2x a Python number's cost",
                all(r <= 1.2 and ok for r, ok in ratios) if ratios else None,
            )
        )
    return rows


def backward_row(cases: list[Case]) -> Row:
    mg, mgc = both(cases, "test_backward")
    label = f"backward: one backward() over a {size('count', mg, mgc)}-node graph (per node)"
    row = speedup_row(label, mg, mgc, ns, 1)
    row.target = "<= 5 ns per node"
    row.met = per_unit(mgc) <= 5e-9 if mgc and checked(mgc) else None
    return row


def mlp_rows(cases: list[Case]) -> list[Row]:
    rows = []
    for inputs, gc_mode, at_least in (
        ("notebook", "gc_on", 1000),
        ("notebook", "gc_off", 40),
        ("floats", "gc_on", 400),
        ("floats", "gc_off", 40),
    ):
        mg, mgc = both(cases, "test_mlp_step", inputs=inputs, gc_mode=gc_mode)
        what = (
            "micrograd's demo.ipynb loop verbatim (numpy inputs and labels)"
            if inputs == "notebook"
            else "the same loop on Python floats"
        )
        label = (
            f"mlp_step: moons training step, {size('points', mg, mgc)} points, {what}, "
            f"GC {gc_mode[3:]}"
        )
        rows.append(speedup_row(label, mg, mgc, ms, at_least))
    return rows


def replay_row(cases: list[Case]) -> Row:
    """The training step re-run with forward(), against micrograd's notebook step (GC on)."""
    mg = find(cases, "test_mlp_step", engine="micrograd", gc_mode="gc_on")
    mgc = find(cases, "test_mlp_replay")
    label = (
        f"mlp_replay: the same step, graph built once and re-run with forward(), "
        f"{size('points', mg, mgc)} points (micrograd: its step, GC on)"
    )
    return speedup_row(label, mg, mgc, ms, 4000)


def floor_rows(cases: list[Case]) -> list[Row]:
    """What no engine whose Values are Python objects can beat on the notebook loop: the loop
    on FloorValue (one __slots__ object per operator, the model check per call, no C), then
    that plus the C work of micrograd_c's step at the mg_mlp and backward cases' ns per node."""
    mg = find(cases, "test_mlp_step", engine="micrograd", inputs="notebook", gc_mode="gc_on")
    floor = find(cases, "test_mlp_floor")
    c_part = find(cases, "test_mg_mlp")
    sweep = find(cases, "test_backward", engine="micrograd_c")

    def bound(with_c: bool) -> tuple[str, str]:
        """The floor's time and micrograd's over it."""
        if mg is None or floor is None or (with_c and not (c_part and sweep)):
            return "not run", "-"
        total = seconds(floor)
        if with_c and c_part and sweep:
            info = floor["extra_info"]
            total += info["mlp_nodes"] * per_unit(c_part) + info["graph_nodes"] * per_unit(sweep)
        return ms(total), times(seconds(mg) / total)

    python_alone, with_c = bound(False), bound(True)
    nodes = (
        f"{floor['extra_info']['mlp_nodes']:,} nodes made by mg_mlp and "
        f"{floor['extra_info']['graph_nodes']:,} swept by backward"
        if floor
        else "its nodes"
    )
    return [
        Row(
            "floor: the notebook loop, GC on, with no engine under it (one __slots__ object "
            "per operator, no graph, no C; each model call only checks the model)",
            show(mg, lambda c: ms(seconds(c))),
            python_alone[0],
            python_alone[1],
            "- (no engine whose Values are Python objects does less)",
            None,
        ),
        Row(
            f"floor + C: that, plus micrograd_c's C work in the step ({nodes}, at the "
            "ns per node of the rows below)",
            show(mg, lambda c: ms(seconds(c))),
            with_c[0],
            with_c[1],
            "- (the most this design can reach)",
            None,
        ),
    ]


def replay_floor_row(cases: list[Case]) -> Row:
    """What no engine whose Values are Python objects can beat on the replayed step: its own
    lines on FloorValue plus micrograd_c's C sweeps alone."""
    mg = find(cases, "test_mlp_step", engine="micrograd", inputs="notebook", gc_mode="gc_on")
    python, sweeps = find(cases, "test_mlp_replay_floor"), find(cases, "test_mlp_sweeps")
    total = seconds(python) + seconds(sweeps) if python and sweeps else None
    return Row(
        "replay floor: the replayed step's own lines with no engine under them "
        f"({ms(seconds(python)) if python else '?'}), plus forward() and backward() in C "
        f"with no Python around them ({ms(seconds(sweeps)) if sweeps else '?'})",
        show(mg, lambda c: ms(seconds(c))),
        ms(total) if total else "not run",
        times(seconds(mg) / total) if mg and total else "-",
        "- (the most this design can reach)",
        None,
    )


def mlp_call_rows(cases: list[Case]) -> list[Row]:
    mg, mgc = both(cases, "test_mlp_call")
    row = speedup_row(
        "mlp_call: one MLP(2, [16, 16, 1]) call on Values, GC on (per call)", mg, mgc, ns, 1
    )
    row.target = "<= 4 us per call"
    row.met = per_unit(mgc) <= 4e-6 if mgc and checked(mgc) else None
    c_part = find(cases, "test_mg_mlp")
    nodes = c_part["extra_info"]["nodes_per_call"] if c_part else "?"
    after = find(cases, "test_mlp_call_after_a_big_graph")
    slower = per_unit(after) / per_unit(mgc) if after and mgc else None
    dropped = f"{after['extra_info']['dropped']:,}" if after else "?"
    return [
        row,
        Row(
            f"mlp_call: the same, after a {dropped}-node graph was dropped and the arena "
            "collected (per call)",
            "-",
            show(after, lambda c: ns(per_unit(c))),
            f"{slower:.2f}x mlp_call" if slower else "-",
            "<= 1.25x mlp_call (no cost stays behind)",
            slower <= 1.25 if slower and checked(after, mgc) else None,
        ),
        Row(
            f"mlp_call: its C part alone, mg_mlp making {nodes} nodes (per node)",
            "-",
            show(c_part, lambda c: ns(per_unit(c))),
            "-",
            "<= 4 ns per node",
            per_unit(c_part) <= 4e-9 if c_part and checked(c_part) else None,
        ),
    ]


def deep_rows(cases: list[Case]) -> list[Row]:
    mg, mgc = both(cases, "test_deep_recursion_limit")

    def outcome(case: Case) -> str:
        result = case["extra_info"]["outcome"]
        return result if result != "ok" else ms(seconds(case))

    rows = [
        Row(
            f"deep: backward() of a {size('depth', mg, mgc)}-deep chain",
            show(mg, outcome),
            show(mgc, outcome),
            "-",
            "micrograd_c backprops it",
            mgc["extra_info"]["outcome"] == "ok" if mgc and checked(mgc) else None,
        )
    ]
    chains = sorted(
        (c for c in cases if c["name"].startswith("test_deep_chain[")),
        key=lambda c: c["extra_info"]["depth"],
    )
    for case in chains:
        longest = case is chains[-1]
        rows.append(
            Row(
                f"deep: backward() of a {size('depth', case)}-deep chain",
                "not tried (RecursionError)",
                show(case, lambda c: f"{ms(seconds(c))} ({ns(per_unit(c))}/node)"),
                "-",
                "a 10M-deep chain backprops" if longest else "-",
                checked(case) and case["extra_info"]["depth"] >= 10**7 if longest else None,
            )
        )
    return rows


def memory_rows(cases: list[Case]) -> list[Row]:
    mg, mgc = both(cases, "test_memory_moons_graph")

    def micrograd_c_bytes(case: Case) -> str:
        info = case["extra_info"]
        return (
            f"{info['bytes_per_node']:.0f} B ({info['arena_bytes_per_node']:.0f} arena, "
            f"capacity {info['capacity_per_node']:.2f}x the peak; "
            f"+ {info['python_bytes_per_node']:.2f} Python)"
        )

    def compactions(case: Case) -> str:
        info = case["extra_info"]
        return (
            f"{info['compactions_per_step']:.2f} a step, "
            f"{ms(info['reclaim_ms_per_step'] / 1e3)} a step compacting and resizing; "
            f"{info['resizes']} resizes"
        )

    judged = mgc is not None and checked(mgc)
    info = mgc["extra_info"] if mgc else {}
    rows = [
        Row(
            f"memory: bytes per live node, moons training loop "
            f"({size('nodes', mg, mgc)} nodes alive at the peak)",
            show(mg, lambda c: f"{c['extra_info']['bytes_per_node']:.0f} B"),
            show(mgc, micrograd_c_bytes),
            times(mg["extra_info"]["bytes_per_node"] / mgc["extra_info"]["bytes_per_node"])
            if mg and mgc
            else "-",
            "<= 90 B per peak-live node in the arena (~3x its slots)",
            info["arena_bytes_per_node"] <= 90 if judged else None,
        ),
        Row(
            "memory: arena compactions per training step",
            "-",
            show(mgc, compactions),
            "-",
            "no storm: <= 2 a step, no resize once warm",
            info["compactions_per_step"] <= 2 and info["resizes"] == 0 if judged else None,
        ),
    ]

    flat = find(cases, "test_memory_flat")
    text, met = "not run", None
    if flat is not None:
        samples = flat["extra_info"]["samples"]
        first, last = samples[0], samples[-1]
        # Flat: from the first sample (a tenth of the way) on, the arena never grows and the
        # process grows by under 1 MiB (page-level noise of the allocators).
        arena_bytes = max(s["arena_bytes"] for s in samples)
        rss = None if first["rss"] is None else max(s["rss"] for s in samples)
        met = (
            checked(flat)
            and arena_bytes == first["arena_bytes"]
            and (rss is None or rss - first["rss"] < 2**20)
        )
        rss_text = (
            ""
            if rss is None
            else f", RSS {first['rss'] / 2**20:,.1f} MiB, at most {rss / 2**20:,.1f}"
        )
        text = show(
            flat,
            lambda c: (
                f"arena {first['arena_bytes'] / 2**20:,.2f} MiB "
                f"({first['capacity']:,} slots), at most "
                f"{arena_bytes / 2**20:,.2f}{rss_text} "
                f"(steps {first['step']:,} to {last['step']:,})"
            ),
        )
    rows.append(
        Row(
            f"memory: {size('count', flat)} training steps",
            "not tried (~20 min)",
            text,
            "-",
            "flat",
            met,
        )
    )
    return rows


def rows_of(cases: list[Case]) -> list[Row]:
    return [
        *mlp_rows(cases),
        replay_row(cases),
        *floor_rows(cases),
        replay_floor_row(cases),
        *mlp_call_rows(cases),
        *op_rows(cases),
        *numpy_rows(cases),
        backward_row(cases),
        *deep_rows(cases),
        *memory_rows(cases),
    ]


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
    load = "/".join(f"{x:.2f}" for x in info.get("load_average") or ()) or "?"
    return (
        f"Machine: {info.get('cpu_model', '?')}, {info.get('cores', '?')} cores, "
        f"{info.get('python', data['machine_info'].get('python_version', '?'))}; "
        f"commit {commit.get('id', '?')[:10]}{dirty}; {data.get('datetime', '?')}; "
        f"load average {load}; {info.get('sizes', '?')} sizes; fastest rounds"
    )


def summary(data: dict[str, Any], rows: list[Row]) -> dict[str, Any]:
    keep = ("min", "median", "mean", "stddev", "rounds")
    return {
        "machine": data["machine_info"].get("micrograd_c_bench", {}),
        "commit": data.get("commit_info", {}),
        "datetime": data.get("datetime"),
        "rows": [asdict(r) for r in rows],
        "cases": [
            {
                "name": c["name"],
                "group": c["group"],
                "params": c.get("params"),
                "extra_info": c["extra_info"],
                "stats": {k: c["stats"][k] for k in keep},
            }
            for c in data["benchmarks"]
        ],
    }


def run_suite(raw: Path, quick: bool) -> int:
    command = [
        sys.executable,
        "-m",
        "pytest",
        str(BENCH),
        "-q",
        "-p",
        "no:cacheprovider",
        f"--benchmark-json={raw}",
        "--benchmark-columns=min,median,mean,rounds",
    ]
    if quick:
        command.append("--bench-quick")
    return subprocess.run(command, cwd=ROOT).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--benchmark-json",
        type=Path,
        help="report this pytest-benchmark JSON instead of running the suite",
    )
    parser.add_argument("--quick", action="store_true", help="run at small sizes (a smoke run)")
    parser.add_argument(
        "--out",
        type=Path,
        default=BENCH / "results.json",
        help="where the numbers go (default: bench/results.json)",
    )
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
    quick = data["machine_info"].get("micrograd_c_bench", {}).get("sizes") == "quick"
    if quick:  # the targets are stated for the full sizes
        for row in rows:
            row.met = None
    print()
    print(machine_text(data))
    print()
    print(markdown(rows))
    if quick:
        print("\nQuick sizes: the targets hold for the full sizes, so none is judged here.")
    args.out.write_text(json.dumps(summary(data, rows), indent=1) + "\n", encoding="utf-8")
    print(f"\nnumbers saved in {args.out}")
    if status:
        print(f"the suite FAILED (pytest exit status {status}): see above", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
