#!/usr/bin/env python3
"""Model of a data-parallel training step on N nodes like this one, from
what `snn bench` measured here (docs/scaling.md prints its output).

    step(N) = compute(B / N) + allreduce(G, N) + reductions * latency(N)

- compute(b): one process on both cores of one node, `snn bench --mode
  train --batch b` (a node's share of the global batch B; between measured
  batches, linear interpolation, below the smallest the smallest's time).
- allreduce(G, N): a ring all-reduce of the gradient's G bytes: every node
  sends and receives 2 (N - 1) / N * G bytes, in 2 (N - 1) latency-bound
  steps: 2 (N - 1) / N * G / bandwidth + 2 (N - 1) * latency.
- the small reductions (two per batch norm, one for the step's figures):
  recursive doubling, ceil(log2 N) latencies each.

Inputs: JSONL files of `snn bench --json` lines (bench/ranks.sh writes
them). Links: 10 Gbit/s Ethernet (TCP, latency 25 us) and 100 Gbit/s
InfiniBand / RoCE (latency 2 us): typical figures, not measured here.
The check against what was measured: the same model with this machine's
own shared-memory link (bandwidth and latency fitted from the 2-rank
runs) and the 2 cores shared by the ranks.

Usage: bench/scaling_model.py RUNS.jsonl ONE_THREAD_RUNS.jsonl
(docs/bench-2026-12-07-scaling.jsonl docs/bench-2026-12-07-one-thread.jsonl)
"""
import json
import math
import sys

LINKS = {"10 Gbit/s": (1.25e9, 25e-6), "100 Gbit/s": (12.5e9, 2e-6)}
NODES = [1, 2, 4, 8, 16, 32, 64]


def load(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            rows += [json.loads(l) for l in f if l.strip()]
    return rows


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


class Row:
    """One paper row: its compute curve and what one step reduces."""

    def __init__(self, name, dataset, batch, rows, steps_per_epoch):
        self.name, self.batch, self.steps = name, batch, steps_per_epoch
        alone = [r for r in rows if r["dataset"] == dataset and r["ranks"] == 1]
        by_batch = {}
        for r in alone:
            by_batch.setdefault(r["batch"], []).append(r["median_s"])
        self.curve = sorted((b, median(t)) for b, t in by_batch.items())
        many = [r for r in rows if r["dataset"] == dataset and r["ranks"] > 1]
        self.grad_bytes = max(r["reduced_gradient_bytes"] for r in many)
        self.small = max(r["reductions_per_step"] for r in many) - 1

    def compute(self, b):
        pts = self.curve
        if b <= pts[0][0]:
            return pts[0][1]
        for (b0, t0), (b1, t1) in zip(pts, pts[1:]):
            if b <= b1:
                return t0 + (t1 - t0) * (b - b0) / (b1 - b0)
        b_last, t_last = pts[-1]
        return t_last * b / b_last

    def comm(self, n, bandwidth, latency):
        if n == 1:
            return 0.0
        ring = 2 * (n - 1) / n * self.grad_bytes / bandwidth + 2 * (n - 1) * latency
        return ring + self.small * math.ceil(math.log2(n)) * latency

    def step(self, n, link):
        return self.compute(math.ceil(self.batch / n)) + self.comm(n, *link)


def table(row, epochs):
    print(f"\n#### {row.name}: global batch {row.batch}, {row.steps} steps an epoch, "
          f"{row.grad_bytes / 1e6:.1f} MB of gradient and {row.small} small reductions a step\n")
    head = "| nodes | images a node | compute s | " + " | ".join(
        f"step s ({k}) | speed-up | {epochs} epochs" for k in LINKS) + " |"
    print(head)
    print("|" + "---|" * (3 + 3 * len(LINKS)))
    one = row.step(1, LINKS["10 Gbit/s"])
    for n in NODES:
        if n > row.batch:
            break
        cells = [str(n), str(math.ceil(row.batch / n)), f"{row.compute(math.ceil(row.batch / n)):.3f}"]
        for link in LINKS.values():
            s = row.step(n, link)
            total = s * row.steps * epochs
            cells += [f"{s:.3f}", f"{one / s:.1f}x", duration(total)]
        print("| " + " | ".join(cells) + " |")


def duration(seconds):
    h = seconds / 3600
    return f"{h / 24:.1f} d" if h >= 48 else f"{h:.1f} h"


def check(rows, one_thread):
    """The model against the 2- and 3-rank runs measured here: ranks of one
    thread on this machine's 2 cores (3 ranks share them: compute x 3/2),
    compute from one-thread runs at the rank's slice, the ring over shared
    memory with the bandwidth of the 2-rank classifier runs (the largest
    message; latency left out: microseconds)."""
    fit = [r for r in rows if r["dataset"] == "mnist" and r.get("time_steps") == 8
           and r["ranks"] == 2 and r["batch"] == 64]
    bandwidth = median([r["reduced_gradient_bytes"] / r["comm_median_s"] for r in fit])
    print(f"\n### Check: measured on this machine against the model "
          f"(shared-memory ring at {bandwidth / 1e9:.2f} GB/s, fitted on the 2-rank batch-64 classifier)\n")
    print("| row | batch | ranks | one-thread compute of a slice s | modelled step s | measured step s (median of runs) | measured in reductions s |")
    print("|---|---|---|---|---|---|---|")
    t1 = {(r.get("time_steps"), r["batch"]): r["median_s"] for r in one_thread}
    seen = set()
    for r in rows:
        n, b, t = r["ranks"], r["batch"], r.get("time_steps")
        if n == 1 or r["dataset"] != "mnist" or (t, b, n) in seen:
            continue
        seen.add((t, b, n))
        same = [x for x in rows if (x["ranks"], x["batch"], x.get("time_steps"), x["dataset"]) == (n, b, t, "mnist")]
        slice_ = math.ceil(b / n)
        if (t, slice_) not in t1:
            continue
        compute = t1[(t, slice_)] * max(1.0, n / 2)
        comm = 2 * (n - 1) / n * r["reduced_gradient_bytes"] / bandwidth
        name = "FSVAE + TAID" if t == 16 else "Table-8 classifier"
        print(f"| {name} | {b} | {n} | {t1[(t, slice_)]:.3f} | {compute + comm:.3f} | "
              f"{median([x['median_s'] for x in same]):.3f} | {median([x['comm_median_s'] for x in same]):.3f} |")


if __name__ == "__main__":
    rows = load(sys.argv[1:2])
    check(rows, load(sys.argv[2:3]))
    fsvae = Row("FSVAE + TAID paper row (MNIST, T = 16)", "mnist", 250,
                [r for r in rows if r.get("time_steps") == 16], 240)
    print("### Modelled step time on N nodes like this one (one rank of 2 threads a node)")
    table(fsvae, 150)
    cls = Row("Table-8 classifier (MNIST, T = 8)", "mnist", 16,
              [r for r in rows if r.get("time_steps") == 8 and r["dataset"] == "mnist"], 3750)
    table(cls, 100)
    cls64 = Row("Table-8 classifier at batch 64", "mnist", 64,
                [r for r in rows if r.get("time_steps") == 8 and r["dataset"] == "mnist"], 938)
    table(cls64, 100)
    cifar = Row("CIFAR-10 classifier (Table 6, T = 8)", "cifar10", 16, rows, 3125)
    table(cifar, 100)
