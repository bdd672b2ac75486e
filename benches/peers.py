#!/usr/bin/env python3
"""Side-by-side: seal vs BuildKit (Debian docker.io's daemon) vs Buildah, on the benchmark
scenarios, interleaved in one run. Writes a markdown table and the raw JSON.

For every scenario and phase (cold, noop, change1, touch1) the three tools run one after the
other, N times; each cell is the median wall time, with the peak RSS of the process that did
the work (seal itself; buildah itself; for BuildKit the daemon's VmHWM, which never
decreases, so it is reported once per scenario). The same Kubefile is used as a Dockerfile,
with COPY destinations rewritten so all three produce the same tree (`COPY dir1 a` in seal
is `COPY dir1 a/dir1` in Docker's semantics).

`cluster` (see scenarios.py) starts a docker-registry on 127.0.0.1 seeded by seal with the base
image and 10 container images; every tool pulls the base from it (BuildKit: dockerd trusts
127.0.0.0/8 over plain HTTP; Buildah: --tls-verify=false). Only seal also collects the 10
images into a registry/ layer (one manifest request per tag on a no-op), so the peers do less.

`ci` (see ci.py) runs `small` and `cluster` on a fresh store with a warm remote cache in that
registry: seal with `--cache-from`, BuildKit with an inline cache and `--cache-from` on a fresh
daemon; it also reports the blob bytes each downloaded (Buildah is not run).

usage: peers.py --seal BIN --work DIR [--runs 5] [--scenarios small,big,run,run-container,deep,deep-run,wide,cluster,ci] [--out DIR]
"""
import argparse
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scenarios  # noqa: E402  (the generators and helpers of the seal-only script)
import ci  # noqa: E402  (the `ci` scenario: a fresh store with a warm remote cache)


def gen_deep(ctx, seed=42):
    """300 small files; 200 instructions: a COPY of one file each plus ENV/LABEL lines."""
    rng = random.Random(seed)
    os.makedirs(os.path.join(ctx, "files"), exist_ok=True)
    for i in range(300):
        with open(os.path.join(ctx, "files", f"f{i:03d}"), "wb") as f:
            f.write(rng.randbytes(rng.randint(256, 2048)))
    os.makedirs(os.path.join(ctx, "dir2"), exist_ok=True)
    with open(os.path.join(ctx, "dir2", "small.txt"), "w") as f:
        f.write("small\n")
    lines = ["FROM scratch"]
    for i in range(199):
        if i % 4 == 3:
            lines.append(f"ENV V{i}=value{i}" if i % 8 == 3 else f"LABEL l{i}=v{i}")
        else:
            lines.append(f"COPY files/f{i:03d} d/f{i:03d}")
    lines.append("COPY dir2 small")
    with open(os.path.join(ctx, "Kubefile"), "w") as f:
        f.write("\n".join(lines) + "\n")


def gen_deep_run(ctx, seed=42):
    """`deep` on the busybox base, with a RUN after the 200 instructions: the RUN's rootfs
    has ~150 layers."""
    gen_deep(ctx, seed)
    scenarios.write_busybox_base(ctx)
    with open(os.path.join(ctx, "Kubefile")) as f:
        text = f.read().replace("FROM scratch", "FROM base:1", 1)
    with open(os.path.join(ctx, "Kubefile"), "w") as f:
        f.write(text + "RUN echo x > c\n")


GENERATORS = dict(scenarios.GENERATORS, deep=gen_deep, **{"deep-run": gen_deep_run,
                                                         "run-container": scenarios.gen_run})

# seal's flags per scenario: `run-container` is the fair comparison (BuildKit runs RUN in runc).
SEAL_FLAGS = {"run-container": ["--mode", "container"]}


def dockerfile_for(kubefile_text):
    """Docker's COPY puts a directory's contents at dest: spell seal's `<dest>/<basename>`."""
    out = []
    for line in kubefile_text.splitlines():
        m = re.match(r"COPY (\S+) (\S+)$", line)
        if m and not m.group(1).endswith("/."):
            src, dest = m.groups()
            base = os.path.basename(src.rstrip("/"))
            if dest == "." or dest == "/":
                target = f"/{base}"
            elif os.path.basename(dest.rstrip("/")) == base:
                target = "/" + dest.strip("/")
            else:
                target = "/" + dest.strip("/") + "/" + base
            line = f"COPY {src} {target}"
        elif m:
            line = f"COPY {m.group(1)} /{m.group(2).strip('/')}/"
        out.append(line)
    return "\n".join(out) + "\n"


class Tool:
    name = "?"

    def reset(self):
        """Forget every cache (cold start)."""

    def build(self, ctx):
        """Build ctx; return (seconds, peak RSS KiB or None)."""
        raise NotImplementedError


def timed(argv, env=None, cwd=None):
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd)
    _pid, status, rusage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    if status != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}... failed ({status}):\n{err[-3000:]}")
    return elapsed, rusage.ru_maxrss


class Seal(Tool):
    name = "seal"

    def __init__(self, binary, work, scenario):
        self.binary, self.root, self.scenario = binary, os.path.join(work, "seal-root"), scenario
        self.base = os.path.join(work, "base")

    def reset(self):
        shutil.rmtree(self.root, ignore_errors=True)
        if self.scenario == "cluster":
            # BuildKit keeps a pulled base's layers in its content store across
            # `builder prune -af` (its cold runs fetch only the config), so every tool starts
            # its cold run with the base pulled, untimed. The 10 collected images are not.
            timed([self.binary, "--root", self.root, "--insecure-registry", scenarios.REGISTRY, "pull",
                   f"{scenarios.REGISTRY}/base:1"])
        if self.scenario in scenarios.RUN_BASED:
            timed([self.binary, "--root", self.root, "build", "--progress", "plain", "-t", "base:1", self.base])

    def build(self, ctx):
        return timed([self.binary, "--root", self.root, *scenarios.global_args(ctx), "build", "--progress", "plain",
                      *SEAL_FLAGS.get(self.scenario, []), "-t", "bench:1", ctx])


class BuildKit(Tool):
    name = "BuildKit"

    def __init__(self, work, scenario):
        self.dir = os.path.join(work, "docker")
        self.sock = os.path.join(self.dir, "docker.sock")
        self.env = dict(os.environ, DOCKER_HOST=f"unix://{self.sock}", DOCKER_BUILDKIT="1")
        self.scenario, self.work = scenario, work
        self.daemon = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        log = open(os.path.join(self.dir, "dockerd.log"), "w")
        self.daemon = subprocess.Popen(
            ["dockerd", "--data-root", os.path.join(self.dir, "data"), "--exec-root", os.path.join(self.dir, "exec"),
             "-H", f"unix://{self.sock}", "--pidfile", os.path.join(self.dir, "dockerd.pid"),
             "--iptables=false", "--ip6tables=false", "--bridge=none", "--storage-driver", "overlay2"],
            stdout=log, stderr=log)
        for _ in range(300):
            if subprocess.run(["/usr/bin/docker", "info"], env=self.env, capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("dockerd did not start; see " + os.path.join(self.dir, "dockerd.log"))

    def stop(self):
        if self.daemon:
            self.daemon.send_signal(signal.SIGTERM)
            try:
                self.daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.daemon.kill()

    def docker(self, *args, check=True):
        return subprocess.run(["/usr/bin/docker", *args], env=self.env, capture_output=True, check=check)

    def reset(self):
        self.docker("builder", "prune", "-af", check=False)
        self.docker("image", "rm", "-f", "bench:1", check=False)
        if self.scenario == "cluster":
            self.docker("image", "rm", "-f", f"{scenarios.REGISTRY}/base:1", check=False)
        if self.scenario in scenarios.RUN_BASED:
            rootfs = os.path.join(self.work, "base", "rootfs")
            tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
            subprocess.run(["/usr/bin/docker", "import", "-", "base:1"], stdin=tar.stdout, env=self.env,
                           capture_output=True, check=True)
            tar.wait()

    def build(self, ctx):
        t, _ = timed(["/usr/bin/docker", "build", "-q", "--network=none", "-t", "bench:1", "-f",
                      os.path.join(ctx, "Dockerfile"), ctx], env=self.env)
        return t, None

    def daemon_peak_rss(self):
        try:
            with open(f"/proc/{self.daemon.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None


class Buildah(Tool):
    name = "Buildah"

    def __init__(self, work, scenario):
        self.dir = os.path.join(work, "buildah")
        self.scenario, self.work = scenario, work

    def args(self, *rest):
        return ["buildah", "--root", os.path.join(self.dir, "root"), "--runroot", os.path.join(self.dir, "run"),
                "--storage-driver", "overlay", *rest]

    def reset(self):
        subprocess.run(self.args("rmi", "-af"), capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
        if self.scenario == "cluster":
            subprocess.run(self.args("pull", "--tls-verify=false", "-q", f"{scenarios.REGISTRY}/base:1"),
                           capture_output=True, check=True)
        if self.scenario in scenarios.RUN_BASED:
            rootfs = os.path.join(self.work, "base", "rootfs")
            cid = subprocess.run(self.args("from", "scratch"), capture_output=True, check=True, text=True).stdout.strip()
            subprocess.run(self.args("copy", cid, rootfs + "/.", "/"), capture_output=True, check=True)
            subprocess.run(self.args("commit", cid, "base:1"), capture_output=True, check=True)
            subprocess.run(self.args("rm", cid), capture_output=True)

    def build(self, ctx):
        return timed(self.args("bud", "--layers", "--isolation", "chroot", "--tls-verify=false", "-q", "-t", "bench:1",
                               "-f", os.path.join(ctx, "Dockerfile"), ctx))


class Failed(Exception):
    """A tool could not build the scenario at all (e.g. BuildKit's overlay depth limit)."""


def attempt(tool, ctx, failures):
    """Build with `tool` unless it already failed this scenario; (secs, rss) or None."""
    if tool.name in failures:
        return None
    # Start every measurement with no dirty pages: otherwise one tool's build is billed for
    # the writeback of the previous tool's output.
    os.sync()
    try:
        return tool.build(ctx)
    except RuntimeError as e:
        failures[tool.name] = str(e).strip().splitlines()[-1][:200]
        return None


def run_scenario(name, seal_bin, work, runs):
    if name == "cluster":
        ctx = os.path.join(work, name, "ctx")
        os.makedirs(ctx, exist_ok=True)
        GENERATORS[name](ctx)  # idempotent; names embed the registry address
        with scenarios.ClusterRegistry(seal_bin, os.path.dirname(ctx)):
            return run_tools(name, seal_bin, work, runs)
    return run_tools(name, seal_bin, work, runs)


def run_tools(name, seal_bin, work, runs):
    sdir = os.path.join(work, name)
    ctx = os.path.join(sdir, "ctx")
    if not os.path.exists(os.path.join(ctx, "Kubefile")):
        shutil.rmtree(ctx, ignore_errors=True)
        os.makedirs(ctx)
        GENERATORS[name](ctx)
    with open(os.path.join(ctx, "Kubefile")) as f:
        dockerfile = dockerfile_for(f.read())
    with open(os.path.join(ctx, "Dockerfile"), "w") as f:
        f.write(dockerfile)
    if name == "run":
        # The base image's rootfs lives beside the context (scenarios.gen_run made it).
        pass
    buildkit = BuildKit(sdir, name)
    buildkit.start()
    tools = [Seal(seal_bin, sdir, name), buildkit, Buildah(sdir, name)]
    result = {t.name: {} for t in tools}
    failures = {}
    try:
        cold = {t.name: [] for t in tools}
        cold_rss = {t.name: [] for t in tools}
        for _ in range(runs):
            for t in tools:
                t.reset()
                got = attempt(t, ctx, failures)
                if got:
                    cold[t.name].append(got[0])
                    if got[1]:
                        cold_rss[t.name].append(got[1])
        for t in tools:
            result[t.name]["cold"] = {"runs": cold[t.name],
                                      "median_s": statistics.median(cold[t.name]) if cold[t.name] else None,
                                      "peak_rss_kib": max(cold_rss[t.name]) if cold_rss[t.name] else None}
            t.reset()
            attempt(t, ctx, failures)
        time.sleep(2.5)  # past seal's racy window, as a rebuild minutes later would be
        for t in tools:
            attempt(t, ctx, failures)
        target = scenarios.small_file(ctx)
        for phase in ("noop", "change1", "touch1"):
            times = {t.name: [] for t in tools}
            rss = {t.name: [] for t in tools}
            for i in range(runs):
                if phase == "change1":
                    with open(target, "wb") as f:
                        f.write(f"changed {time.time_ns()} {i}\n".encode())
                elif phase == "touch1":
                    os.utime(target, None)
                for t in tools:
                    got = attempt(t, ctx, failures)
                    if got:
                        times[t.name].append(got[0])
                        if got[1]:
                            rss[t.name].append(got[1])
            for t in tools:
                result[t.name][phase] = {"runs": times[t.name],
                                         "median_s": statistics.median(times[t.name]) if times[t.name] else None,
                                         "peak_rss_kib": max(rss[t.name]) if rss[t.name] else None}
        result["BuildKit"]["daemon_peak_rss_kib"] = buildkit.daemon_peak_rss()
        for tool, error in failures.items():
            result[tool]["error"] = error
    finally:
        buildkit.stop()
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seal", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--scenarios", default="small,big,run,run-container,deep,deep-run,wide,cluster,ci")
    ap.add_argument("--out", default=".")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    everything = {"machine": {"nproc": os.cpu_count(), "uname": " ".join(os.uname())}, "runs": args.runs,
                  "scenarios": {}}
    lines = ["| scenario | phase | seal | BuildKit | Buildah | BuildKit / seal | Buildah / seal |",
             "|---|---|---|---|---|---|---|"]
    for name in args.scenarios.split(","):
        print(f"== {name}", file=sys.stderr)
        if name == "ci":
            res = ci.run_ci(os.path.abspath(args.seal), os.path.abspath(args.work), args.runs, BuildKit, GENERATORS,
                            dockerfile_for)
            everything["scenarios"][name] = res
            lines.extend(ci.table_lines(res))
            with open(os.path.join(args.out, "peers.json"), "w") as f:
                json.dump(everything, f, indent=2)
            continue
        res = run_scenario(name, os.path.abspath(args.seal), os.path.abspath(args.work), args.runs)
        everything["scenarios"][name] = res
        def cell(v):
            return f"{v * 1000:.0f} ms" if v else "failed"

        def ratio(v, s):
            return f"{v / s:.1f}×" if v and s else "–"

        for phase in ("cold", "noop", "change1", "touch1"):
            s, b, h = (res[t][phase]["median_s"] for t in ("seal", "BuildKit", "Buildah"))
            lines.append(f"| {name} | {phase} | {cell(s)} | {cell(b)} | {cell(h)} | {ratio(b, s)} | {ratio(h, s)} |")
        for tool in ("seal", "BuildKit", "Buildah"):
            if "error" in res[tool]:
                lines.append(f"| {name} | {tool} failed | {res[tool]['error'].replace('|', '/')} | | | | |")
        rss = [res["seal"]["cold"]["peak_rss_kib"], res["BuildKit"].get("daemon_peak_rss_kib"),
               res["Buildah"]["cold"]["peak_rss_kib"]]
        cells = " | ".join(f"{r / 1024:.0f} MiB" if r else "?" for r in rss)
        lines.append(f"| {name} | peak RSS (cold) | {cells} | | |")
        with open(os.path.join(args.out, "peers.json"), "w") as f:
            json.dump(everything, f, indent=2)
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "peers.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
