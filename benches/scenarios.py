#!/usr/bin/env python3
"""Run BENCHMARKS.md scenarios for seal: cold, noop, change1, touch1.

Generated data (fixed seed, never committed) goes under the work dir. Each measurement is the
median of N runs; peak RSS comes from wait4's rusage of the seal process. Writes a markdown
table and the raw JSON.

usage: scenarios.py --seal BIN --work DIR [--runs 5] [--scenarios small,big,run,wide] [--out DIR]
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

KUBEFILE = "FROM scratch\nCOPY dir1 a\nCOPY dir2 b\n"


def gen_small(ctx, seed=42):
    """10,000 files of 1-8 KiB in 200 nested dirs, split in dir1/ and dir2/."""
    rng = random.Random(seed)
    for i in range(200):
        top = "dir1" if i < 100 else "dir2"
        d = os.path.join(ctx, top, f"d{i // 10:02d}", f"e{i % 10}")
        os.makedirs(d, exist_ok=True)
        for j in range(50):
            with open(os.path.join(d, f"f{j:03d}.dat"), "wb") as f:
                f.write(rng.randbytes(rng.randint(1024, 8192)))
    with open(os.path.join(ctx, "Kubefile"), "w") as f:
        f.write(KUBEFILE)


def gen_big(ctx, seed=42):
    """5 files of 200 MiB random data in dir1/, one small file in dir2/."""
    rng = random.Random(seed)
    os.makedirs(os.path.join(ctx, "dir1"), exist_ok=True)
    os.makedirs(os.path.join(ctx, "dir2"), exist_ok=True)
    chunk = 8 << 20
    for i in range(5):
        with open(os.path.join(ctx, "dir1", f"blob{i}.bin"), "wb") as f:
            for _ in range((200 << 20) // chunk):
                f.write(rng.randbytes(chunk))
    with open(os.path.join(ctx, "dir2", "small.txt"), "wb") as f:
        f.write(b"small file\n")
    with open(os.path.join(ctx, "Kubefile"), "w") as f:
        f.write(KUBEFILE)


def gen_run(ctx, seed=42):
    """The small context plus a busybox-static rootfs to import as base:1."""
    gen_small(ctx, seed)
    base = os.path.join(os.path.dirname(ctx), "base")
    rootfs = os.path.join(base, "rootfs", "bin")
    os.makedirs(rootfs, exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(rootfs, "busybox"))
    for applet in ("sh", "echo", "ls", "cat"):
        link = os.path.join(rootfs, applet)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    with open(os.path.join(base, "Kubefile"), "w") as f:
        f.write("FROM scratch\nCOPY rootfs/. .\n")
    with open(os.path.join(ctx, "Kubefile"), "w") as f:
        f.write("FROM base:1\nCOPY dir1 a\nCOPY dir2 b\nRUN echo x > c\n")


def gen_wide(ctx, seed=42):
    """16 dirs of 64 MiB (4 files of 16 MiB each); 16 independent COPY steps."""
    rng = random.Random(seed)
    lines = ["FROM scratch"]
    for d in range(16):
        path = os.path.join(ctx, f"dir{d + 1:02d}")
        os.makedirs(path, exist_ok=True)
        for i in range(4):
            with open(os.path.join(path, f"part{i}.bin"), "wb") as f:
                f.write(rng.randbytes(16 << 20))
        lines.append(f"COPY dir{d + 1:02d} d{d + 1:02d}")
    os.makedirs(os.path.join(ctx, "dir2"), exist_ok=True)
    with open(os.path.join(ctx, "dir2", "small.txt"), "w") as f:
        f.write("small\n")
    lines.append("COPY dir2 small")
    with open(os.path.join(ctx, "Kubefile"), "w") as f:
        f.write("\n".join(lines) + "\n")


GENERATORS = {"small": gen_small, "big": gen_big, "run": gen_run, "wide": gen_wide}


def prepare_root(name, seal, root, ctx):
    """A store in the scenario's starting state (for `run`: holding base:1)."""
    shutil.rmtree(root, ignore_errors=True)
    if name == "run":
        base = os.path.join(os.path.dirname(ctx), "base")
        subprocess.run([seal, "--root", root, "build", "--progress", "plain", "-t", "base:1", base],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def small_file(ctx):
    """The file change1/touch1 edit: one small file in dir2."""
    for root, _dirs, files in sorted(os.walk(os.path.join(ctx, "dir2"))):
        for name in sorted(files):
            return os.path.join(root, name)
    raise SystemExit("no file in dir2")


def run_measured(seal, root, ctx, extra=()):
    """Run one build; return (seconds, peak RSS KiB, summary line)."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        log = os.open(os.path.join(root + ".log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 2)
        os.execv(seal, [seal, "--root", root, "build", "--progress", "plain", "-t", "bench:1", *extra, ctx])
    _pid, status, rusage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - start
    with open(root + ".log", errors="replace") as f:
        log = f.read()
    if status != 0:
        sys.stderr.write(log)
        raise SystemExit(f"seal failed (status {status})")
    summary = [line for line in log.splitlines() if line.startswith("built ")]
    return elapsed, rusage.ru_maxrss, summary[-1] if summary else ""


def du_bytes(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


def floor_find(ctx):
    start = time.perf_counter()
    subprocess.run(["find", ctx, "-type", "f", "-printf", "%s %T@\n"], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def scenario(name, seal, work, runs):
    ctx = os.path.join(work, name, "ctx")
    if not os.path.exists(os.path.join(ctx, "Kubefile")):
        shutil.rmtree(ctx, ignore_errors=True)
        os.makedirs(ctx)
        GENERATORS[name](ctx)
    results = {}
    # cold: a fresh store every run; let the page cache be warm like a developer's machine.
    cold, rss, written = [], [], []
    for i in range(runs):
        root = os.path.join(work, name, "root-cold")
        prepare_root(name, seal, root, ctx)
        t, r, _ = run_measured(seal, root, ctx)
        cold.append(t)
        rss.append(r)
        written.append(du_bytes(root))
    results["cold"] = {"runs": cold, "median_s": statistics.median(cold), "peak_rss_kib": max(rss), "bytes_written": statistics.median(written)}
    if name == "wide":
        serial = []
        for i in range(runs):
            root = os.path.join(work, name, "root-cold")
            prepare_root(name, seal, root, ctx)
            t, _r, _ = run_measured(seal, root, ctx, ("--max-parallelism", "1"))
            serial.append(t)
        results["cold_max_parallelism_1"] = {"runs": serial, "median_s": statistics.median(serial)}
    root = os.path.join(work, name, "root-warm")
    prepare_root(name, seal, root, ctx)
    run_measured(seal, root, ctx)
    time.sleep(2.5)  # past the racy window, as a real rebuild minutes later would be
    run_measured(seal, root, ctx)
    noop, rss, summaries = [], [], []
    for _ in range(runs):
        t, r, s = run_measured(seal, root, ctx)
        noop.append(t)
        rss.append(r)
        summaries.append(s)
    results["noop"] = {"runs": noop, "median_s": statistics.median(noop), "peak_rss_kib": max(rss), "summary": summaries[-1]}
    target = small_file(ctx)
    for kind in ("change1", "touch1"):
        times, rss, summaries = [], [], []
        for i in range(runs):
            if kind == "change1":
                with open(target, "wb") as f:
                    f.write(f"changed {time.time_ns()} {i}\n".encode())
            else:
                os.utime(target, None)
            t, r, s = run_measured(seal, root, ctx)
            times.append(t)
            rss.append(r)
            summaries.append(s)
        results[kind] = {"runs": times, "median_s": statistics.median(times), "peak_rss_kib": max(rss), "summary": summaries[-1]}
    results["floor_find_s"] = statistics.median(floor_find(ctx) for _ in range(runs))
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seal", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scenarios", default="small,big")
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    all_results = {"machine": {"nproc": os.cpu_count(), "uname": " ".join(os.uname())}, "scenarios": {}}
    for name in args.scenarios.split(","):
        print(f"== {name}", file=sys.stderr)
        all_results["scenarios"][name] = scenario(name, os.path.abspath(args.seal), os.path.abspath(args.work), args.runs)
    with open(os.path.join(args.out, "seal-scenarios.json"), "w") as f:
        json.dump(all_results, f, indent=2)
    lines = ["| scenario | phase | median | peak RSS | notes |", "|---|---|---|---|---|"]
    for name, res in all_results["scenarios"].items():
        for phase in ("cold", "noop", "change1", "touch1"):
            r = res[phase]
            note = r.get("summary", "")
            if phase == "cold":
                note = f"{r['bytes_written'] / (1 << 20):.1f} MiB written"
            note = note.replace("|", "/")
            lines.append(f"| {name} | {phase} | {r['median_s'] * 1000:.1f} ms | {r['peak_rss_kib'] / 1024:.1f} MiB | {note} |")
        if "cold_max_parallelism_1" in res:
            serial = res["cold_max_parallelism_1"]["median_s"]
            ratio = serial / res["cold"]["median_s"]
            lines.append(f"| {name} | cold, --max-parallelism 1 | {serial * 1000:.1f} ms | | parallel is {ratio:.2f}x faster |")
        lines.append(f"| {name} | find floor | {res['floor_find_s'] * 1000:.1f} ms | | `find -type f -printf '%s %T@'` |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "seal-scenarios.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
