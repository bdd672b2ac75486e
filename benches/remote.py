#!/usr/bin/env python3
"""Remote execution (issue 18): what a RUN costs on a Remote Execution API server.

Starts buildbox-casd (scripts/install-buildbox.sh) on a free 127.0.0.1 port with a fresh cache
and measures, with medians of N runs:

- overhead: an 8-stage Kubefile of tiny RUNs (`FROM base:1 AS sN; RUN echo N > /n`, then one
  stage copying the eight results) built cold in container mode and with --remote-executor
  against a cold server (fresh cache: every action executes) and a warm one (a fresh local
  store, the server's action cache answers every action). The per-action overhead is the
  difference of the medians over 8.
- uploads: the `run` scenario of BENCHMARKS.md (scenarios.py's generator: busybox base:1, 10,000
  small files, `RUN echo x > c`): bytes and blobs the RUN uploaded in the first remote build,
  in a second one after one small file of dir2 changed (change1), and in a first build from a
  fresh local store against the warm server — read from the `remote: uploaded_bytes=` progress
  line each remote step prints.

usage: remote.py --seal BIN --work DIR [--runs 3] [--out DIR]
"""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenarios  # noqa: E402  (the run scenario's generator)

STAGES = 8


def buildbox_dir():
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([os.path.join(here, "..", "scripts", "install-buildbox.sh")],
                         check=True, stdout=subprocess.PIPE, text=True)
    return out.stdout.strip().splitlines()[-1]


class Server:
    """buildbox-casd with its own cache directory, killed by pid on exit."""

    def __init__(self, bindir):
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="casd-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [os.path.join(bindir, "buildbox-casd"), f"--bind=127.0.0.1:{self.port}",
             f"--buildbox-run={os.path.join(bindir, 'buildbox-run')}", "--jobs=2",
             os.path.join(self.dir, "cas")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("buildbox-casd did not start")
                time.sleep(0.05)

    def url(self):
        return f"grpc://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def build(seal, root, ctx, tag, extra=()):
    """One build; returns (seconds, stderr)."""
    start = time.perf_counter()
    out = subprocess.run([seal, "--root", root, "build", "--progress", "plain", "--build-mode", "lite",
                          "-t", tag, *extra, "."], cwd=ctx, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"build failed:\n{out.stderr}")
    return took, out.stderr


def fresh_root(seal, work, ctx):
    """A store holding base:1 only."""
    root = os.path.join(work, "root")
    shutil.rmtree(root, ignore_errors=True)
    base = os.path.join(os.path.dirname(ctx), "base")
    subprocess.run([seal, "--root", root, "build", "--progress", "plain", "-t", "base:1", base],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return root


def uploads(stderr):
    """(bytes, blobs) of every remote step's progress line."""
    return [(int(b), int(n)) for b, n in re.findall(r"remote: uploaded_bytes=(\d+) uploaded_blobs=(\d+)", stderr)]


def overhead(seal, work, bindir, runs):
    ctx = os.path.join(work, "stages", "ctx")
    os.makedirs(ctx, exist_ok=True)
    scenarios.write_busybox_base(ctx)
    kubefile = "".join(f"FROM base:1 AS s{i}\nRUN echo {i} > /n\n\n" for i in range(STAGES))
    kubefile += "FROM scratch\n" + "".join(f"COPY --from=s{i} /n /n{i}\n" for i in range(STAGES))
    with open(os.path.join(ctx, "Kubefile"), "w") as f:
        f.write(kubefile)
    container, cold, warm = [], [], []
    for _ in range(runs):
        root = fresh_root(seal, work, ctx)
        container.append(build(seal, root, ctx, "stages:1", ("--mode", "container"))[0])
        server = Server(bindir)
        try:
            root = fresh_root(seal, work, ctx)
            t, err = build(seal, root, ctx, "stages:1", ("--remote-executor", server.url()))
            assert len(uploads(err)) == STAGES, err
            cold.append(t)
            root = fresh_root(seal, work, ctx)
            t, err = build(seal, root, ctx, "stages:1", ("--remote-executor", server.url()))
            assert err.count("cached_result") == STAGES, err
            warm.append(t)
        finally:
            server.stop()
    c, r, w = statistics.median(container), statistics.median(cold), statistics.median(warm)
    return {"container_runs": container, "remote_cold_runs": cold, "remote_warm_runs": warm,
            "container_s": c, "remote_cold_s": r, "remote_warm_s": w,
            "overhead_per_action_s": (r - c) / STAGES}


def run_uploads(seal, work, bindir):
    ctx = os.path.join(work, "run", "ctx")
    if not os.path.exists(os.path.join(ctx, "Kubefile")):
        shutil.rmtree(ctx, ignore_errors=True)
        os.makedirs(ctx)
        scenarios.gen_run(ctx)
    server = Server(bindir)
    try:
        url = ("--remote-executor", server.url())
        root = fresh_root(seal, work, ctx)
        t1, err1 = build(seal, root, ctx, "run:1", url)
        target = scenarios.small_file(ctx)
        with open(target, "wb") as f:
            f.write(f"changed {time.time_ns()}\n".encode())
        t2, err2 = build(seal, root, ctx, "run:2", url)
        root = fresh_root(seal, work, ctx)
        t3, err3 = build(seal, root, ctx, "run:3", url)
    finally:
        server.stop()
    return {"first": {"s": t1, "uploads": uploads(err1)},
            "second_change1": {"s": t2, "uploads": uploads(err2)},
            "fresh_store_warm_server": {"s": t3, "uploads": uploads(err3),
                                        "cached_result": "cached_result" in err3}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seal", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    seal, work = os.path.abspath(args.seal), os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    bindir = buildbox_dir()
    results = {"overhead": overhead(seal, work, bindir, args.runs), "run": run_uploads(seal, work, bindir)}
    with open(os.path.join(args.out, "remote.json"), "w") as f:
        json.dump(results, f, indent=2)
    o, r = results["overhead"], results["run"]
    lines = [
        "| measurement | value |", "|---|---|",
        f"| 8 stages of tiny RUNs, container mode (median) | {o['container_s'] * 1000:.0f} ms |",
        f"| the same, remote, cold server (every action executes) | {o['remote_cold_s'] * 1000:.0f} ms |",
        f"| the same, remote, fresh local store, warm server (action cache) | {o['remote_warm_s'] * 1000:.0f} ms |",
        f"| overhead per remote action vs container mode | {o['overhead_per_action_s'] * 1000:+.0f} ms |",
    ]
    for label, key in (("run: first remote build", "first"), ("run: second remote build (change1)", "second_change1"),
                       ("run: fresh local store, warm server", "fresh_store_warm_server")):
        b, n = r[key]["uploads"][0]
        lines.append(f"| {label}: uploaded by the RUN | {b:,} bytes in {n} blobs ({r[key]['s'] * 1000:.0f} ms build) |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "remote.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
