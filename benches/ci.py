#!/usr/bin/env python3
"""The `ci` scenario (BENCHMARKS.md): a fresh CI runner with a warm remote cache.

For `small` and `cluster`, inside the cluster scenario's docker-registry on 127.0.0.1:

- seal: one untimed build with `--cache-to type=registry,ref=REG/ci/NAME:seal,mode=max`; then
  each measured run is a new, empty store building with `--cache-from` that ref.
- BuildKit (Debian docker.io 20.10): one untimed build with
  `--build-arg BUILDKIT_INLINE_CACHE=1`, pushed as REG/ci/NAME:buildkit; then each measured
  run starts a new daemon on an empty data root (untimed) and builds with `--cache-from` that
  ref (the fresh daemon pulls the base, if any, from the same registry).

Per run: wall time, steps seal executed (must be 0), and the bytes the registry sent in blob
GETs during the build (from its access log), against the built image's bytes.
Used by peers.py (`--scenarios ci`).
"""
import os
import re
import shutil
import statistics
import subprocess
import time

import scenarios

LOG_LINE = re.compile(r'"(GET|HEAD|PUT|POST|PATCH) (\S+) [^"]*" (\d{3}) (\d+|-)')


def blob_bytes(registry, start):
    """Bytes the registry sent for blob GETs in its log lines from index `start` on, and the
    log's length now."""
    with open(registry.log, errors="replace") as f:
        lines = f.readlines()
    total = 0
    for line in lines[start:]:
        m = LOG_LINE.search(line)
        if m and m.group(1) == "GET" and "/blobs/" in m.group(2) and m.group(4) != "-":
            total += int(m.group(4))
    return total, len(lines)


def log_length(registry):
    with open(registry.log, errors="replace") as f:
        return sum(1 for _ in f)


def seal_build(seal, root, ctx, *flags):
    """Run one seal build; (seconds, steps executed)."""
    start = time.perf_counter()
    proc = subprocess.run([seal, "--root", root, "--insecure-registry", scenarios.REGISTRY, "build", "--progress",
                           "plain", *flags, "-t", "bench:1", ctx], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"seal build failed:\n{proc.stderr[-3000:]}")
    summary = [line for line in proc.stderr.splitlines() if line.startswith("built ")][-1]
    executed = int(re.search(r"(\d+) executed", summary).group(1))
    return elapsed, executed


def image_bytes(seal, root):
    out = subprocess.run([seal, "--root", root, "inspect", "bench:1"], capture_output=True, text=True, check=True)
    import json
    return sum(layer["size"] for layer in json.loads(out.stdout)["layers"])


def run_seal(seal, work, name, ctx, registry, runs):
    ref = f"{scenarios.REGISTRY}/ci/{name}:seal"
    warm = os.path.join(work, "seal-warm")
    shutil.rmtree(warm, ignore_errors=True)
    seal_build(seal, warm, ctx, "--cache-to", f"type=registry,ref={ref},mode=max")
    size = image_bytes(seal, warm)
    times, downloaded, executed = [], [], []
    fresh = os.path.join(work, "seal-fresh")
    for _ in range(runs):
        shutil.rmtree(fresh, ignore_errors=True)
        os.sync()
        start = log_length(registry)
        t, ran = seal_build(seal, fresh, ctx, "--cache-from", f"type=registry,ref={ref}")
        got, _ = blob_bytes(registry, start)
        times.append(t)
        downloaded.append(got)
        executed.append(ran)
    return {"runs": times, "median_s": statistics.median(times), "downloaded_bytes": downloaded,
            "image_bytes": size, "executed": executed}


def run_buildkit(buildkit_cls, work, name, ctx, registry, runs):
    ref = f"{scenarios.REGISTRY}/ci/{name}:buildkit"
    dockerfile = os.path.join(ctx, "Dockerfile")
    times, downloaded = [], []
    for i in range(runs + 1):
        kit = buildkit_cls(os.path.join(work, f"buildkit-{i}"), "ci")
        shutil.rmtree(kit.dir, ignore_errors=True)
        kit.start()
        try:
            if i == 0:
                # The warm cache: a build that inlines its cache metadata, pushed.
                kit.docker("build", "-q", "--network=none", "--build-arg", "BUILDKIT_INLINE_CACHE=1", "-t", ref,
                           "-f", dockerfile, ctx)
                kit.docker("push", ref)
                continue
            os.sync()
            start = log_length(registry)
            t0 = time.perf_counter()
            kit.docker("build", "-q", "--network=none", "--cache-from", ref, "-t", "bench:1", "-f", dockerfile, ctx)
            times.append(time.perf_counter() - t0)
            downloaded.append(blob_bytes(registry, start)[0])
        finally:
            kit.stop()
            shutil.rmtree(kit.dir, ignore_errors=True)
    return {"runs": times, "median_s": statistics.median(times), "downloaded_bytes": downloaded}


def run_ci(seal, work, runs, buildkit_cls, generators, dockerfile_for):
    """Both contexts inside one registry (the cluster scenario's, which serves its base)."""
    cluster_ctx = os.path.join(work, "cluster", "ctx")
    os.makedirs(cluster_ctx, exist_ok=True)
    generators["cluster"](cluster_ctx)
    small_ctx = os.path.join(work, "small", "ctx")
    if not os.path.exists(os.path.join(small_ctx, "Kubefile")):
        shutil.rmtree(small_ctx, ignore_errors=True)
        os.makedirs(small_ctx)
        generators["small"](small_ctx)
    result = {}
    with scenarios.ClusterRegistry(seal, os.path.dirname(cluster_ctx)) as registry:
        for name, ctx in (("small", small_ctx), ("cluster", cluster_ctx)):
            with open(os.path.join(ctx, "Kubefile")) as f:
                text = dockerfile_for(f.read())
            with open(os.path.join(ctx, "Dockerfile"), "w") as f:
                f.write(text)
            sdir = os.path.join(work, "ci", name)
            os.makedirs(sdir, exist_ok=True)
            result[name] = {
                "seal": run_seal(seal, sdir, name, ctx, registry, runs),
                "BuildKit": run_buildkit(buildkit_cls, sdir, name, ctx, registry, runs),
            }
    return result


def table_lines(result):
    """Markdown rows: time and bytes downloaded per tool, for each context."""
    lines = []
    for name, res in result.items():
        s, b = res["seal"], res["BuildKit"]
        size = s["image_bytes"]
        ratio = f"{b['median_s'] / s['median_s']:.1f}×" if s["median_s"] else "–"
        lines.append(f"| ci-{name} | fresh store, warm cache | {s['median_s'] * 1000:.0f} ms | "
                     f"{b['median_s'] * 1000:.0f} ms | – | {ratio} | – |")
        sd, bd = statistics.median(s["downloaded_bytes"]), statistics.median(b["downloaded_bytes"])
        lines.append(f"| ci-{name} | blob bytes downloaded (image {size / 2**20:.1f} MiB) | "
                     f"{sd / 2**10:.1f} KiB ({100 * sd / size:.2f}%) | {bd / 2**20:.1f} MiB ({100 * bd / size:.0f}%) "
                     f"| – | | |")
        lines.append(f"| ci-{name} | steps seal executed | {max(s['executed'])} | | | | |")
    return lines
