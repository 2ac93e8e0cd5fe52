"""The arena's memory against its compaction time, over its headroom: the curve behind the
sizing policy in csrc/graph.c (docs/design.md, "Sizing the arena").

    python bench/arena_curve.py                 # 6 headrooms x 6 workloads (~4 min)
    python bench/arena_curve.py --rounds 1 --headrooms 200 250 --points 100

The workload is bench's moons training step (MLP(2, [16, 16, 1]) called on N points, the SVM
loss and L2 term, zero_grad, backward, SGD), with Python's GC on as users run it, for several
N: what a compaction costs depends on how much is alive when it falls, that is on where the
step's period falls against the arena's size, so one workload gives one lucky or unlucky
point per headroom; several sizes give the spread.  For each headroom, in turn within a round
(so that the machine's load falls on every headroom alike): the arena is collected and
resized for the new headroom, warmed up, then each step is timed and its compactions
counted.  Reported per headroom, then as mean and worst over the workloads:

- capacity and arena bytes at steady state, per peak-live node (one step's graph, parameters
  included: the most that is alive at once in this loop);
- compactions per step, and arena resizes after warm-up (a storm would show here);
- the time spent compacting and resizing per step (the arena's own clock,
  mg_reclaim_nanoseconds), and as a share of the step;
  the step time being the median of the process's CPU time (the machine is shared; CPU time
  is what other processes disturb least).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import micrograd_c  # noqa: E402
from micrograd_c._core import lib  # noqa: E402

from mgbench import ENGINES, Moons, count_nodes  # noqa: E402

HEADROOMS = [150, 200, 250, 300, 400, 1000]
POINTS = [60, 75, 90, 100, 115, 130]


@dataclass
class Samples:
    step_seconds: list[float] = field(default_factory=list)
    compactions: list[int] = field(default_factory=list)
    reclaim_seconds: float = 0.0
    capacity: int = 0
    arena_bytes: int = 0
    resizes: int = 0


def run(moons: Moons, headroom: int, warmup: int, steps: int, out: Samples) -> None:
    assert lib.mg_set_headroom(headroom) == 0
    micrograd_c.collect()
    for k in range(warmup):
        moons.step(k, warmup)
    resizes, reclaim_ns = lib.mg_arena_resizes(), lib.mg_reclaim_nanoseconds()
    for k in range(steps):
        before = lib.mg_compactions()
        start = time.process_time()
        moons.step(k, steps)
        out.step_seconds.append(time.process_time() - start)
        out.compactions.append(lib.mg_compactions() - before)
        out.capacity = max(out.capacity, lib.mg_capacity())
        out.arena_bytes = max(out.arena_bytes, lib.mg_arena_bytes())
    out.resizes += lib.mg_arena_resizes() - resizes
    out.reclaim_seconds += (lib.mg_reclaim_nanoseconds() - reclaim_ns) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--headrooms", type=int, nargs="+", default=HEADROOMS)
    parser.add_argument(
        "--points",
        type=int,
        nargs="+",
        default=POINTS,
        help="moons sizes: each is its own workload (its own phase)",
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--steps", type=int, default=100)
    args = parser.parse_args()

    results: dict[int, list[tuple[float, float, float, float, float]]] = {
        h: [] for h in args.headrooms
    }
    print(f"moons steps, GC on, {args.rounds} rounds x {args.steps} steps per headroom and size\n")
    print("| points | peak live | " + " | ".join(f"{h}%" for h in args.headrooms) + " |")
    print("|---|---|" + "---|" * len(args.headrooms))
    for points in args.points:
        moons = Moons(ENGINES["micrograd_c"], points)
        total_loss, _ = moons.loss()
        peak_live = count_nodes(total_loss)
        del total_loss
        samples = {h: Samples() for h in args.headrooms}
        for r in range(args.rounds):
            order = args.headrooms if r % 2 == 0 else args.headrooms[::-1]
            for headroom in order:
                run(moons, headroom, args.warmup, args.steps, samples[headroom])
        cells = []
        for headroom, s in samples.items():
            steps = len(s.step_seconds)
            step = statistics.median(s.step_seconds)
            reclaim = s.reclaim_seconds / steps
            results[headroom].append(
                (
                    s.capacity / peak_live,
                    s.arena_bytes / peak_live,
                    sum(s.compactions) / steps,
                    reclaim / step,
                    s.resizes,
                )
            )
            cells.append(f"{s.capacity / peak_live:.2f}x, {reclaim / step:.1%}")
        print(f"| {points} | {peak_live:,} | " + " | ".join(cells) + " |")
    lib.mg_set_headroom(250)

    print(
        "\n(each cell: capacity / peak live, and compacting + resizing as a share of the "
        "step's median CPU time)\n"
    )
    print(
        "| headroom | capacity / peak live: mean, most | arena bytes / peak-live node: mean, "
        "most | compactions / step | compacting + resizing, share of step: mean, most "
        "| resizes once warm |"
    )
    print("|---|---|---|---|---|---|")
    for headroom, rows in results.items():
        caps, nbytes, comp, share, resizes = zip(*rows)
        print(
            f"| {headroom}% | {statistics.mean(caps):.2f}x, {max(caps):.2f}x "
            f"| {statistics.mean(nbytes):.0f} B, {max(nbytes):.0f} B "
            f"| {statistics.mean(comp):.2f} | {statistics.mean(share):.1%}, {max(share):.1%} "
            f"| {sum(resizes)} |"
        )


if __name__ == "__main__":
    main()
