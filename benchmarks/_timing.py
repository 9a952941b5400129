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

__all__ = ["Timing", "compare", "calibrate", "format_table", "machine_line", "plot_timings"]


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


def plot_timings(path, panels, title, machine=None):
    """Write a PNG of bar charts to ``path``: one panel per ``(title, Timing)``
    in ``panels``, one bar per candidate (its median µs per call), with the
    paired ratio to the panel's first candidate written beside each bar. A
    panel whose times span more than a factor 20 gets a log scale.

    Needs matplotlib (imported only here).
    """
    try:
        import matplotlib
    except ImportError as e:
        raise SystemExit("--plot needs matplotlib: pip install matplotlib") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 2 if len(panels) > 1 else 1
    rows = -(-len(panels) // cols)
    height = max(max(len(t.names) for _, t in panels) * 0.42 + 1.1, 2.2)
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 * cols, height * rows), squeeze=False)
    for ax, (name, timing) in zip(axes.flat, panels):
        names = timing.names
        base = names[0]
        unit, scale = ("ms", 1e3) if max(timing.median(n) for n in names) >= 1e3 else ("µs", 1.0)
        medians = [timing.median(n) / scale for n in names]
        y = range(len(names))
        ax.barh(y, medians, color=[f"C{i % 10}" for i in y])
        ax.set_yticks(list(y), names)
        ax.invert_yaxis()
        if max(medians) > 20 * min(medians):
            ax.set_xscale("log")
        for i, (n, m) in enumerate(zip(names, medians)):
            label = f" {m:.3g} {unit}" + ("" if n == base else f"  ({timing.ratio(n, base):.2f}×)")
            ax.text(m, i, label, va="center", fontsize=8)
        ax.set_xlim(right=ax.get_xlim()[1] * (3 if ax.get_xscale() == "log" else 1.35))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(f"median time per call ({unit}); in brackets: paired ratio to the first bar", fontsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(title + (f"\n{machine}" if machine else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
