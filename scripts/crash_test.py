#!/usr/bin/env python3
"""Crash safety: SIGKILL seal at random moments of many builds, then check the store.

Each round edits the context (so steps have work to do) and starts `seal build`, then
kills it with SIGKILL after a random delay. The last rounds kill without editing, so every
step a killed build reported DONE must be served from the cache by the final build. At the
end: `seal fsck` must be clean (when the binary has it), the final build must reuse those
steps, its digest must equal a --no-cache build in a fresh store, and no mount or step
process may be left.

usage: crash_test.py --seal BIN [--rounds 50] [--seed 1] [--work DIR]
"""
import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

KUBEFILE = """FROM scratch
COPY dir1 a
COPY dir2 b
RUN cat b/dir2/* | wc -c > size && ls a/dir1 | wc -l > count
COPY dir3 c
"""


def make_context(ctx, rng):
    for d, files, size in (("dir1", 800, 2048), ("dir2", 6, 12 << 20), ("dir3", 200, 4096)):
        os.makedirs(os.path.join(ctx, d), exist_ok=True)
        for i in range(files):
            with open(os.path.join(ctx, d, f"f{i:04d}"), "wb") as f:
                f.write(rng.randbytes(size))
    with open(os.path.join(ctx, "Kubefile"), "w") as f:
        f.write(KUBEFILE)


def mutate(ctx, rng):
    d = rng.choice(["dir1", "dir2", "dir3"])
    names = sorted(os.listdir(os.path.join(ctx, d)))
    path = os.path.join(ctx, d, rng.choice(names))
    size = os.path.getsize(path)
    with open(path, "wb") as f:
        f.write(rng.randbytes(size))
    return f"rewrote {d}/{os.path.basename(path)}"


def steps(stderr):
    """{step description: 'DONE'|'CACHED'|...} from plain progress."""
    names, out = {}, {}
    for line in stderr.splitlines():
        m = re.match(r"#(\d+) (.*)$", line)
        if not m:
            continue
        num, text = m.groups()
        if text.startswith("["):
            names.setdefault(num, text)
        elif num in names and (text == "CACHED" or text.startswith("DONE")):
            out[names[num]] = "CACHED" if text == "CACHED" else "DONE"
    return out


def build(seal, root, ctx, extra=()):
    return subprocess.run([seal, "--root", root, "build", "--progress", "plain", "-t", "crash:1", *extra, ctx],
                          capture_output=True, text=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seal", required=True)
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = args.work or tempfile.mkdtemp(prefix="seal-crash-")
    ctx, root = os.path.join(work, "ctx"), os.path.join(work, "store")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(ctx)
    make_context(ctx, rng)
    # How long an uncached build takes, to spread the kills over it.
    started = time.monotonic()
    first = build(args.seal, root, ctx)
    full = time.monotonic() - started
    if first.returncode != 0:
        sys.exit(f"the first build failed:\n{first.stderr}")
    print(f"uncached build: {full:.2f}s; {args.rounds} rounds, seed {args.seed}, work dir {work}")
    quiet_rounds = max(3, args.rounds // 10)
    # Kills are spread over how long an incremental build takes (learned as rounds finish).
    estimate = full * 0.6
    done_since_edit = set()
    killed = finished = 0
    for n in range(args.rounds):
        editing = n < args.rounds - quiet_rounds
        what = mutate(ctx, rng) if editing else "no edit"
        if editing:
            done_since_edit.clear()
        # Quiet rounds (no edit) let builds get further, so some steps complete and the final
        # build has finished work to reuse.
        delay = rng.uniform(0, estimate) if editing else rng.uniform(0.3 * full, 1.2 * full)
        round_started = time.monotonic()
        proc = subprocess.Popen([args.seal, "--root", root, "build", "--progress", "plain", "-t", "crash:1", ctx],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
            outcome = "killed"
        else:
            finished += 1
            outcome = f"finished ({proc.returncode})"
            estimate = max(0.05, 0.5 * estimate + 0.5 * (time.monotonic() - round_started))
        _, err = proc.communicate()
        done = {s for s, v in steps(err).items() if v == "DONE"}
        done_since_edit |= done
        print(f"round {n + 1:2d}: {what:24s} kill after {delay:5.2f}s: {outcome}; steps done: {len(done)}")
    problems = []
    fsck = subprocess.run([args.seal, "--root", root, "fsck"], capture_output=True, text=True)
    if "unrecognized subcommand" in fsck.stderr:
        print("fsck: not available in this binary")
    else:
        print(f"fsck: exit {fsck.returncode}\n{fsck.stdout.strip()}\n{fsck.stderr.strip()}".rstrip())
        if fsck.returncode != 0:
            problems.append("fsck found problems")
    final = build(args.seal, root, ctx)
    if final.returncode != 0:
        sys.exit(f"the final build failed:\n{final.stderr}")
    final_steps = steps(final.stderr)
    summary = [l for l in final.stderr.splitlines() if l.startswith("built ")]
    print(f"final build: {summary[-1] if summary else final.stderr}")
    for step in sorted(done_since_edit):
        state = final_steps.get(step)
        print(f"  finished earlier: {step} -> {state}")
        if state != "CACHED":
            problems.append(f"{step} had completed but was not reused")
    clean_root = os.path.join(work, "clean")
    clean = build(args.seal, clean_root, ctx, ("--no-cache",))
    if clean.stdout.strip() != final.stdout.strip():
        problems.append(f"digest {final.stdout.strip()} differs from a clean build's {clean.stdout.strip()}")
    mounts = [l for l in open("/proc/self/mountinfo") if work in l]
    if mounts:
        problems.append(f"mounts left: {mounts}")
    print(f"{killed} killed, {finished} finished before the kill; "
          f"final digest {'equals' if clean.stdout.strip() == final.stdout.strip() else 'DIFFERS from'} a clean build")
    if problems:
        print("PROBLEMS:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print("crash test passed")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
