"""How fast this machine is right now, so that seconds measured in different runs can be compared.

One CPU's speed drifts up to twofold within a day, and the machines change between sessions (BENCHMARK.md,
Speed): a bench run's seconds per clip say as much about the machine that day as about the code. A bench run
therefore times one fixed workload when it starts and when it ends (`reference_ms`), and `latentvideo compare`
divides two runs' seconds per clip by it (`normalised_speed`).

The workload is shaped like the pipeline's hot loop, pivotal tuning: a two-layer 3x3 conv net's forward and
backward pass over a batch of 28 px sprites, the same seeded tensors on every machine, on the bench's threads.
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPEATS = 30  # timed passes; the median is reported (the first WARMUP are not timed)
WARMUP = 3


def reference_ms(repeats: int = REPEATS) -> float:
    """Median milliseconds of one forward + backward pass of the fixed workload (module docstring)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 32, 28, 28, generator=g)  # [sprites, channels, S, S]
    w1 = (torch.randn(32, 32, 3, 3, generator=g) / 17).requires_grad_()
    w2 = (torch.randn(4, 32, 3, 3, generator=g) / 17).requires_grad_()
    times = []
    for i in range(WARMUP + repeats):
        t0 = time.perf_counter()
        y = F.conv2d(F.leaky_relu(F.conv2d(x, w1, padding=1), 0.2), w2, padding=1)  # [12, 4, S, S]
        y.square().mean().backward()
        if i >= WARMUP:
            times.append(time.perf_counter() - t0)
        w1.grad = w2.grad = None
    return 1000 * statistics.median(times)


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_reference(results: dict) -> float | None:
    """A bench run's reference time in ms, the mean of its start and end (results["speed"]["reference_ms"]), or
    None for a run from before it was kept."""
    ref = results.get("speed", {}).get("reference_ms")
    return None if not ref else (ref["start"] + ref["end"]) / 2


def normalised_speed(results_a: dict, row_a: dict, results_b: dict, row_b: dict) -> str | None:
    """One line on two rows' seconds per clip (batched, as the bench's table gives them): their ratio as
    measured and, where both runs timed the reference workload, divided by each run's reference time (a row of
    a run on a slower machine is not slower code). None where a row has no time."""
    sa, sb = row_a.get("seconds_per_clip"), row_b.get("seconds_per_clip")
    if not sa or not sb:
        return None
    line = f"s/clip (batched): A {sa:.2f}, B {sb:.2f}, B/A {sb / sa:.2f}"
    ra, rb = run_reference(results_a), run_reference(results_b)
    if results_a is not results_b and ra and rb:
        line += (
            f"; the machine's reference workload {ra:.1f} ms in A's run, {rb:.1f} ms in B's, so B/A"
            f" {(sb / rb) / (sa / ra):.2f} at equal machine speed"
        )
    return line
