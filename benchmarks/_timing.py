"""Interleaved, round-robin micro-benchmark timing shared by the benchmark scripts.

Every round runs each candidate once (``inner`` calls, timed together), in a
rotating order, so slow drifts of the machine (frequency, other load) hit
all candidates alike. Reported: the median over rounds of the per-call time,
and ratios to a baseline as the median over rounds of the *same-round*
ratio (paired, so a round slowed by outside load cancels out).
"""

import os
import platform
import statistics
import time

import torch

__all__ = ["Timing", "compare", "calibrate", "format_table", "machine_line"]


class Timing:
    """Per-round per-call samples (µs) of named candidates."""

    def __init__(self, samples):
        self.samples = samples

    @property
    def names(self):
        return list(self.samples)

    def median(self, name):
        return statistics.median(self.samples[name])

    def ratio(self, name, baseline):
        """Median over rounds of time(name) / time(baseline) in the same round."""
        pairs = zip(self.samples[name], self.samples[baseline])
        return statistics.median(a / b for a, b in pairs)

    def medians(self):
        return {n: self.median(n) for n in self.samples}


def calibrate(fn, target_s=2e-3, max_inner=10_000):
    """The number of calls that takes about ``target_s`` (at least 1)."""
    fn()
    n = 1
    while n < max_inner:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t >= target_s:
            break
        n *= 2
    return n


def compare(candidates, *, rounds=200, warmup=3, target_s=2e-3, clock=time.perf_counter_ns):
    """Time ``candidates`` ({name: zero-arg callable}) interleaved; returns a :class:`Timing`.

    ``clock`` (nanoseconds) is wall time by default; ``time.thread_time_ns``
    counts only the CPU time of the calling thread, which outside load does
    not inflate (for single-threaded runs on a shared machine).
    """
    names = list(candidates)
    inner = {}
    for name in names:
        for _ in range(warmup):
            candidates[name]()
        inner[name] = calibrate(candidates[name], target_s)
    samples = {name: [] for name in names}
    for r in range(rounds):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn, n = candidates[name], inner[name]
            t = clock()
            for _ in range(n):
                fn()
            samples[name].append((clock() - t) / n / 1e3)
    return Timing(samples)


def format_table(title, timing, baseline, extra_baselines=()):
    """A text table: name, median µs, paired ratio to ``baseline`` (and to extra baselines)."""
    bases = [baseline, *extra_baselines]
    width = max(len(n) for n in timing.names)
    head = f"{'candidate':<{width}}  {'median µs':>10}" + "".join(f"  {'/ ' + b:>20}" for b in bases)
    lines = [title, head, "-" * len(head)]
    for name in timing.names:
        ratios = "".join(f"  {timing.ratio(name, b):>20.3f}" for b in bases)
        lines.append(f"{name:<{width}}  {timing.median(name):>10.2f}{ratios}")
    return "\n".join(lines)


def machine_line():
    return (
        f"torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"torch.get_num_threads() = {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
