"""The arena's memory against its compaction time, over its headroom: the curve behind the
sizing policy in csrc/graph.c (docs/design.md, "Sizing the arena").

    python bench/arena_curve.py                 # all headrooms, 3 rounds (~2 min)
    python bench/arena_curve.py --rounds 1 --headrooms 200 250

The workload is bench's moons training step (MLP(2, [16, 16, 1]) called on 100 points, the SVM
loss and L2 term, zero_grad, backward, SGD), with Python's GC on as users run it.  For each
headroom, in turn within a round (so that the machine's load falls on every headroom alike):
the arena is collected and resized for the new headroom, warmed up, then each step is timed
and its compactions counted.  Reported per headroom:

- capacity and arena bytes at steady state, per peak-live node (one step's graph, parameters
  included: the most that is alive at once in this loop);
- compactions per step, and arena resizes after warm-up (a storm would show here);
- the time spent compacting and resizing per step (the arena's own clock,
  mg_reclaim_nanoseconds), and as a share of the step;
- step time: the median over all measured steps of the process's CPU time (the machine is
  shared; CPU time is what other processes disturb least), and its ratio to the largest
  headroom's, which compacts least.
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
from mgbench import ENGINES, FULL, Moons, count_nodes  # noqa: E402

HEADROOMS = [150, 175, 200, 250, 300, 400, 600, 1000]


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
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()

    moons = Moons(ENGINES["micrograd_c"], FULL.moons)
    total_loss, _ = moons.loss()
    peak_live = count_nodes(total_loss)
    del total_loss
    samples = {h: Samples() for h in args.headrooms}
    for r in range(args.rounds):
        order = args.headrooms if r % 2 == 0 else args.headrooms[::-1]
        for headroom in order:
            run(moons, headroom, args.warmup, args.steps, samples[headroom])
    lib.mg_set_headroom(250)

    print(f"moons step, {FULL.moons} points, GC on; peak live set {peak_live:,} nodes; "
          f"{args.rounds} rounds x {args.steps} steps per headroom\n")
    print("| headroom | capacity / peak live | arena bytes / peak-live node | compactions / step "
          "| resizes after warm-up | compacting + resizing / step | step (median CPU) "
          "| vs. largest headroom |")
    print("|---|---|---|---|---|---|---|---|")
    medians = {h: statistics.median(s.step_seconds) for h, s in samples.items()}
    reference = medians[max(samples)]
    for headroom, s in samples.items():
        steps = len(s.step_seconds)
        reclaim = s.reclaim_seconds / steps
        print(f"| {headroom}% | {s.capacity / peak_live:.2f}x ({s.capacity:,} slots) "
              f"| {s.arena_bytes / peak_live:.0f} B | {sum(s.compactions) / steps:.2f} "
              f"| {s.resizes} | {reclaim * 1e3:.3f} ms ({reclaim / medians[headroom]:.1%}) "
              f"| {medians[headroom] * 1e3:.3f} ms | {medians[headroom] / reference - 1:+.1%} |")


if __name__ == "__main__":
    main()
