"""Cost of measuring: start+stop overhead per window, and the slowdown of a metered workload.

For each energy backend available on this machine (and ``auto``):

- overhead: the wall time of ``start()`` + ``stop()`` around an empty window, after a few
  warm-up windows (the first CodeCarbon tracker spends ~1.3 s probing the hardware), as
  the median and 90th percentile over ``--windows`` windows, in ms;
- slowdown: a fixed pure-Python workload of about 2 s, run alternately without and inside
  a window, ``--rounds`` times each; the ratio of the median wall times.

Targets (issue 3): <= 5 ms per window after warm-up; slowdown <= 1 % (ratio <= 1.01).

    PYTHONPATH=. .venv/bin/python benchmarks/meters.py [--rounds 5] [--windows 100]
"""

from __future__ import annotations

import argparse
import statistics
import time

from ecotune.energy import get_meter, meter_status
from ecotune.names import METER_BACKENDS


def work(n: int) -> int:
    """A fixed CPU-bound workload (holds the GIL, as a Python training loop partly does)."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def calibrate(target_s: float = 2.0) -> int:
    n = 200_000
    while True:
        t0 = time.perf_counter()
        work(n)
        elapsed_s = time.perf_counter() - t0
        if elapsed_s > 0.2:
            return int(n * target_s / elapsed_s)
        n *= 4


def overhead_ms(name: str, windows: int, warmup: int = 3) -> tuple[float, float]:
    meter = get_meter(name)
    for _ in range(warmup):
        meter.start()
        meter.stop()
    times_ms = []
    for _ in range(windows):
        t0 = time.perf_counter()
        meter.start()
        meter.stop()
        times_ms.append((time.perf_counter() - t0) * 1e3)
    times_ms.sort()
    return statistics.median(times_ms), times_ms[int(0.9 * (len(times_ms) - 1))]


def slowdown(name: str, n: int, rounds: int) -> tuple[float, float, float]:
    meter = get_meter(name)
    bare_s, metered_s = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        work(n)
        bare_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with meter.window():
            work(n)
        metered_s.append(time.perf_counter() - t0)
    bare, metered = statistics.median(bare_s), statistics.median(metered_s)
    return bare, metered, metered / bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--windows", type=int, default=100)
    args = parser.parse_args()
    names = [n for n in METER_BACKENDS if meter_status(n).available] + ["auto"]
    for name in METER_BACKENDS:
        if name not in names:
            print(f"{name}: not available here ({meter_status(name).reason})")
    n = calibrate()
    print(f"workload: {n} iterations, about 2 s; {args.rounds} rounds; "
          f"{args.windows} empty windows for the overhead")
    print(f"{'backend':<12} {'overhead median ms':>19} {'p90 ms':>8} "
          f"{'bare s':>8} {'metered s':>10} {'ratio':>7}")
    for name in names:
        median_ms, p90_ms = overhead_ms(name, args.windows)
        bare_s, metered_s, ratio = slowdown(name, n, args.rounds)
        label = f"{name} ({get_meter(name).name})" if name == "auto" else name
        print(f"{label:<12} {median_ms:>19.3f} {p90_ms:>8.3f} "
              f"{bare_s:>8.3f} {metered_s:>10.3f} {ratio:>7.4f}")


if __name__ == "__main__":
    main()
