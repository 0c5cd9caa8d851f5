#!/usr/bin/env python3
"""Latency distribution of each bench target from pgbench's per-transaction logs (run.sh with LATENCY_PLOT):
a Markdown table of percentiles with the p99 each proxy adds over direct Postgres, and a PNG of the
distributions (latency against percentile, log scale), one panel per pgbench script.

Usage: latency_plot.py LATENCY_DIR OUT.png   (LATENCY_DIR holds SCRIPT_TARGET.txt files of microseconds)
"""

from __future__ import annotations

import glob
import os
import sys

ORDER = ["direct", "pgbouncer", "pgpool", "switchyard"]


def pct(sorted_us: list[int], p: float) -> float:
    return sorted_us[min(len(sorted_us) - 1, int(len(sorted_us) * p / 100))] / 1000


def main() -> None:
    folder, out = sys.argv[1], sys.argv[2]
    data: dict[str, dict[str, list[int]]] = {}
    for path in glob.glob(os.path.join(folder, "*.txt")):
        script, target = os.path.basename(path)[:-4].rsplit("_", 1)
        with open(path) as f:
            data.setdefault(script, {})[target] = sorted(int(x) for x in f if x.strip())
    print("\nLatency per transaction, last round (ms); added p99 = target p99 - direct p99:\n")
    print("| workload | target | p50 | p90 | p99 | p99.9 | max | added p99 |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for script, targets in sorted(data.items()):
        direct = targets.get("direct")
        for target in [t for t in ORDER if t in targets]:
            lat = targets[target]
            added = f"{pct(lat, 99) - pct(direct, 99):.3f}" if direct and target != "direct" else "—"
            print(f"| {script} | {target} | {pct(lat, 50):.3f} | {pct(lat, 90):.3f} | {pct(lat, 99):.3f} "
                  f"| {pct(lat, 99.9):.3f} | {lat[-1] / 1000:.3f} | {added} |")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(no plot: matplotlib is not installed)")
        return
    fig, axes = plt.subplots(1, len(data), figsize=(6.5 * len(data), 4.5), squeeze=False)
    for ax, (script, targets) in zip(axes[0], sorted(data.items())):
        for target in [t for t in ORDER if t in targets]:
            lat = targets[target]
            n = len(lat)
            # Latency against the percentile, on a log axis that spreads out the tail (1 - q).
            qs = [1 - (i + 0.5) / n for i in range(n)]
            ax.plot([x / 1000 for x in lat], qs, label=f"{target} (p99 {pct(lat, 99):.2f} ms)")
        ax.set_yscale("log")
        ax.set_ylim(1 / max(len(v) for v in targets.values()), 1)
        ax.set_xscale("log")
        ax.set_xlabel("latency per transaction (ms)")
        ax.set_ylabel("share of transactions slower (log)")
        ax.set_title(f"pgbench {script}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"\nPlot: {os.path.basename(out)}")


if __name__ == "__main__":
    main()
