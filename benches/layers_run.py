#!/usr/bin/env python3
"""A RUN after many layers against one after few (issue 15's hardening case).

For each N (default 5 and 500): a context with N one-file COPY steps on the busybox base,
then `RUN echo ... > c`. Per N and run:
  cold   - a fresh store (base built untimed), the whole build: N COPYs and the RUN;
  rerun  - the RUN's command edited, so only the RUN runs again over the N cached layers;
and the RUN step's own time (its `#N DONE` line of `--progress plain`).

usage: layers_run.py --seal BIN --work DIR [--layers 5,500] [--runs 3]
"""
import argparse
import os
import re
import shutil
import statistics
import subprocess
import time

import scenarios


def make_context(ctx, n):
    os.makedirs(ctx, exist_ok=True)
    scenarios.write_busybox_base(ctx)
    lines = ["FROM base:1"]
    for i in range(n):
        with open(os.path.join(ctx, f"f{i:04d}"), "w") as f:
            f.write(f"layer {i}\n")
        lines.append(f"COPY f{i:04d} l/f{i:04d}")
    lines.append("RUN echo 0 > c")
    write_kubefile(ctx, lines)
    return lines


def write_kubefile(ctx, lines):
    with open(os.path.join(ctx, "Kubefile"), "w") as f:
        f.write("\n".join(lines) + "\n")


def build(seal, root, ctx):
    """(seconds, the build's stderr)."""
    os.sync()
    start = time.perf_counter()
    out = subprocess.run([seal, "--root", root, "build", "--progress", "plain", "-t", "layers:1", ctx],
                         capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"seal failed:\n{out.stderr[-3000:]}")
    return elapsed, out.stderr


def run_step_seconds(log):
    """The RUN step's `#N DONE 0.12s` as `--progress plain` prints it."""
    step = None
    for line in log.splitlines():
        m = re.match(r"#(\d+) \[\d+/\d+\] RUN ", line)
        if m:
            step = m.group(1)
        m = re.match(r"#(\d+) DONE (\d+(?:\.\d+)?)s", line)
        if m and m.group(1) == step:
            return float(m.group(2))
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seal", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--layers", default="5,500")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    seal = os.path.abspath(args.seal)
    rows = []
    for n in [int(x) for x in args.layers.split(",")]:
        sdir = os.path.join(os.path.abspath(args.work), f"layers-{n}")
        ctx = os.path.join(sdir, "ctx")
        lines = make_context(ctx, n)
        base = os.path.join(sdir, "base")
        root = os.path.join(sdir, "root")
        cold, rerun, run_cold, run_rerun = [], [], [], []
        for r in range(args.runs):
            shutil.rmtree(root, ignore_errors=True)
            subprocess.run([seal, "--root", root, "build", "--progress", "plain", "-t", "base:1", base],
                           check=True, capture_output=True)
            write_kubefile(ctx, lines)
            t, log = build(seal, root, ctx)
            cold.append(t)
            run_cold.append(run_step_seconds(log))
            write_kubefile(ctx, lines[:-1] + [f"RUN echo {r + 1} > c"])
            t, log = build(seal, root, ctx)
            rerun.append(t)
            run_rerun.append(run_step_seconds(log))
        shutil.rmtree(root, ignore_errors=True)
        rows.append((n, cold, rerun, run_cold, run_rerun))

    def ms(xs):
        xs = [x for x in xs if x is not None]
        return f"{statistics.median(xs) * 1000:.0f} ms" if xs else "-"

    print("| layers | cold build | RUN step (cold) | RUN re-run build | RUN step (re-run) |")
    print("|---|---|---|---|---|")
    for n, cold, rerun, run_cold, run_rerun in rows:
        print(f"| {n} | {ms(cold)} | {ms(run_cold)} | {ms(rerun)} | {ms(run_rerun)} |")
    for n, cold, rerun, _, _ in rows:
        print(f"runs (ms) N={n}: cold {[round(x * 1000) for x in cold]} rerun {[round(x * 1000) for x in rerun]}")


if __name__ == "__main__":
    main()
