#!/usr/bin/env python3
"""Run BENCHMARKS.md scenarios for seal: cold, noop, change1, touch1.

Generated data (fixed seed, never committed) goes under the work dir. Each measurement is the
median of N runs; peak RSS comes from wait4's rusage of the seal process. Writes a markdown
table and the raw JSON.

The `cluster` scenario starts Debian's docker-registry on 127.0.0.1 (port $SEAL_BENCH_REGISTRY_PORT,
default 45556) with fresh storage, builds a ~300 MiB base cluster image and 10 small container
images with seal (in a seed store under the work dir) and pushes them there, then measures
`FROM <registry>/base:1; COPY manifests; COPY charts; CMD` with image collection on, counting the
registry's requests during every no-op build. The registry is stopped at the end.

`multi` builds `small` and `cluster` cold, one platform (the host's) against two
(`--platform linux/amd64,linux/arm64`), interleaved, each from an empty store; its cluster's base
and container images are two-platform indexes seal built and pushed (work dir `multi-cluster/`).

`big` also measures the floor pipeline over the same bytes in the same run: read + blake3 +
sha256 + zstd -1 on all cores (`cat | tee >(b3sum) >(openssl dgst -sha256) | zstd -1 -T0`;
openssl because coreutils' sha256sum does not use the CPU's SHA extensions).

usage: scenarios.py --seal BIN --work DIR [--runs 5] [--scenarios small,big,run,wide,cluster,multi] [--out DIR]
"""
import argparse
import collections
import json
import os
import random
import shutil
import signal
import socket
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
    write_busybox_base(ctx)
    with open(os.path.join(ctx, "Kubefile"), "w") as f:
        f.write("FROM base:1\nCOPY dir1 a\nCOPY dir2 b\nRUN echo x > c\n")


def write_busybox_base(ctx):
    """A busybox-static rootfs beside ctx (base/rootfs), with the Kubefile that imports it."""
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


REGISTRY_PORT = int(os.environ.get("SEAL_BENCH_REGISTRY_PORT", "45556"))
REGISTRY = f"127.0.0.1:{REGISTRY_PORT}"
CLUSTER_IMAGES = [f"{REGISTRY}/bench/app{i}:1" for i in range(10)]


def write_if_changed(path, data):
    """Write `data` unless the file already holds it (mtimes of unchanged files stay old)."""
    data = data.encode() if isinstance(data, str) else data
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def deployment(name, image):
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: kube-system\n"
            f"spec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n"
            f"    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n"
            f"        - name: {name}\n          image: {image}\n          args: [\"--v=2\"]\n")


def chart(name, images):
    """A chart whose values name the images; the template renders one Deployment each."""
    values = "".join(f"app{i}:\n  image:\n    repository: {img.rsplit(':', 1)[0]}\n    tag: \"1\"\n"
                     for i, img in enumerate(images))
    template = "".join(
        f"---\n{deployment(f'{name}-{i}', '{{ .Values.app' + str(i) + '.image.repository }}:{{ .Values.app' + str(i) + '.image.tag }}')}"
        for i in range(len(images)))
    return {
        "Chart.yaml": f"apiVersion: v2\nname: {name}\nversion: 0.1.0\nappVersion: \"1\"\n",
        "values.yaml": values,
        "templates/deployments.yaml": template,
    }


def gen_cluster(ctx, seed=42):
    """A ~300 MiB base cluster image (binaries, manifests, a chart), 10 small container images,
    and the scenario's context: manifests and a chart referencing those images.

    Layout beside ctx: base/ (the base image's context), images/appN/ (each a FROM scratch +
    COPY context). Image names embed the registry address, so they are rewritten (only when
    they differ) on every run."""
    rng = random.Random(seed)
    top = os.path.dirname(ctx)
    base = os.path.join(top, "base")
    # Binaries: random (incompressible) bytes, like stripped executables would mostly be.
    for name, mib in (("kubelet", 110), ("kubeadm", 60), ("kubectl", 50), ("containerd", 40), ("crictl", 36)):
        path = os.path.join(base, "bin", name)
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                for _ in range(mib):
                    f.write(rng.randbytes(1 << 20))
    for i in range(10):
        path = os.path.join(top, "images", f"app{i}", "app")
        if not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(rng.randbytes(256 << 10))
        write_if_changed(os.path.join(top, "images", f"app{i}", "Kubefile"), "FROM scratch\nCOPY app app\n")
    write_cluster_files(ctx)


def write_cluster_files(ctx):
    top = os.path.dirname(ctx)
    base = os.path.join(top, "base")
    # The base's own manifests (CNI, DNS, ...) and a chart: 200 small YAML files in all.
    for i in range(180):
        image = CLUSTER_IMAGES[8 + i % 2] if i < 2 else None
        doc = deployment(f"base{i}", image) if image else (
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: base{i}\ndata:\n  n: \"{i}\"\n")
        write_if_changed(os.path.join(base, "manifests", f"base{i:03d}.yaml"), doc)
    for rel, text in chart("base-addons", []).items():
        write_if_changed(os.path.join(base, "charts", "base-addons", rel), text)
    write_if_changed(os.path.join(base, "Kubefile"),
                     "FROM scratch\nCOPY bin bin\nCOPY manifests manifests\nCOPY charts charts\n")
    # The scenario: 6 images named by manifests, 2 by a chart (the base names the last 2).
    for i in range(6):
        write_if_changed(os.path.join(ctx, "manifests", f"app{i}.yaml"), deployment(f"app{i}", CLUSTER_IMAGES[i]))
    write_if_changed(os.path.join(ctx, "manifests", "NOTES.txt"), "what change1 and touch1 edit\n")
    for rel, text in chart("apps", CLUSTER_IMAGES[6:8]).items():
        write_if_changed(os.path.join(ctx, "charts", "apps", rel), text)
    write_if_changed(os.path.join(ctx, "Kubefile"),
                     f"FROM {REGISTRY}/base:1\nCOPY manifests manifests\nCOPY charts charts\n"
                     "CMD kubectl apply -f manifests/\n")


class ClusterRegistry:
    """Debian's docker-registry on 127.0.0.1 with fresh storage, seeded with the base image and
    the 10 container images (built by seal in a seed store that survives between runs)."""

    def __init__(self, seal, top, platforms=None):
        self.seal, self.top = seal, top
        # `--platform` for the seeded images (`None`: the host's only).
        self.platform_args = ["--platform", platforms] if platforms else []
        self.dir = os.path.join(top, "registry")
        self.log = os.path.join(self.dir, "access.log")
        self.proc = None

    def __enter__(self):
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", REGISTRY_PORT)) == 0:
                raise SystemExit(f"something already listens on {REGISTRY} (set SEAL_BENCH_REGISTRY_PORT)")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        config = os.path.join(self.dir, "config.yml")
        with open(config, "w") as f:
            f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                    f"    rootdirectory: {self.dir}/data\nhttp:\n  addr: {REGISTRY}\n")
        # The access log (one Apache-style line per request) goes to stdout.
        self.proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", config],
                                     stdout=open(self.log, "w"), stderr=subprocess.DEVNULL)
        for _ in range(300):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", REGISTRY_PORT)) == 0:
                    break
            time.sleep(0.05)
        else:
            raise SystemExit("docker-registry did not start")
        seed = os.path.join(self.top, "seed-store")
        base = [self.seal, "--root", seed, "--insecure-registry", REGISTRY]
        quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
        # gzip layers: Docker 20.10 (BuildKit's peer run) cannot unpack zstd ones.
        for i, image in enumerate(CLUSTER_IMAGES):
            subprocess.run(base + ["build", "--progress", "plain", "--compression", "gzip", *self.platform_args, "-t", image,
                                   os.path.join(self.top, "images", f"app{i}")], **quiet)
            subprocess.run(base + ["push", image], **quiet)
        subprocess.run(base + ["build", "--progress", "plain", "--compression", "gzip", "--build-mode", "lite",
                               *self.platform_args, "-t", f"{REGISTRY}/base:1",
                               os.path.join(self.top, "base")], **quiet)
        subprocess.run(base + ["push", f"{REGISTRY}/base:1"], **quiet)
        return self

    def requests(self):
        """The request lines (`HEAD /v2/... HTTP/1.1`) logged so far."""
        out = []
        with open(self.log, errors="replace") as f:
            for line in f:
                start = line.find('"') + 1
                end = line.find('"', start)
                if start > 0 and end > start:
                    out.append(line[start:end])
        return out

    def __exit__(self, *exc):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# Scenarios whose Kubefile starts FROM base:1 (the busybox rootfs beside the context).
RUN_BASED = ("run", "run-container", "deep-run")

GENERATORS = {"small": gen_small, "big": gen_big, "run": gen_run, "wide": gen_wide, "cluster": gen_cluster}


def prepare_root(name, seal, root, ctx):
    """A store in the scenario's starting state (for `run`: holding base:1)."""
    shutil.rmtree(root, ignore_errors=True)
    if name in RUN_BASED:
        base = os.path.join(os.path.dirname(ctx), "base")
        subprocess.run([seal, "--root", root, "build", "--progress", "plain", "-t", "base:1", base],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def small_file(ctx):
    """The file change1/touch1 edit: one small file in dir2 (cluster: a note beside the manifests)."""
    if os.path.exists(os.path.join(ctx, "manifests", "NOTES.txt")):
        return os.path.join(ctx, "manifests", "NOTES.txt")
    for root, _dirs, files in sorted(os.walk(os.path.join(ctx, "dir2"))):
        for name in sorted(files):
            return os.path.join(root, name)
    raise SystemExit("no file in dir2")


def global_args(ctx):
    """seal's global flags a scenario needs (the cluster's registry is plain HTTP)."""
    return ["--insecure-registry", REGISTRY] if os.path.basename(os.path.dirname(ctx)).endswith("cluster") else []


def run_measured(seal, root, ctx, extra=()):
    """Run one build; return (seconds, peak RSS KiB, summary line)."""
    os.sync()  # no dirty pages of an earlier run are flushed during this one
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        log = os.open(os.path.join(root + ".log"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 2)
        os.execv(seal, [seal, "--root", root, *global_args(ctx), "build", "--progress", "plain", "-t", "bench:1",
                        *extra, ctx])
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


def floor_pipeline(ctx):
    """Seconds to read every file under ctx once and blake3 + sha256 + zstd -1 the stream,
    the tools running in parallel on all cores."""
    files = sorted(os.path.join(r, n) for r, _d, ns in os.walk(ctx) for n in ns if n != "Kubefile")
    script = ('cat "$@" | tee >(b3sum >/dev/null) >(openssl dgst -sha256 >/dev/null) '
              '| zstd -1 -T0 -q -c >/dev/null; wait')
    start = time.perf_counter()
    subprocess.run(["bash", "-c", script, "floor", *files], check=True)
    return time.perf_counter() - start, sum(os.path.getsize(f) for f in files)


TWO_PLATFORMS = "linux/amd64,linux/arm64"


def multi(seal, work, runs):
    """Cold builds of `small` and `cluster` for one platform and for two, interleaved."""
    results = {}
    for name in ("small", "cluster"):
        top = os.path.join(work, "multi-" + name if name == "cluster" else name)
        ctx = os.path.join(top, "ctx")
        if name == "small" and not os.path.exists(os.path.join(ctx, "Kubefile")):
            shutil.rmtree(ctx, ignore_errors=True)
            os.makedirs(ctx)
            gen_small(ctx)
        registry = None
        if name == "cluster":
            os.makedirs(ctx, exist_ok=True)
            gen_cluster(ctx)
            registry = ClusterRegistry(seal, top, TWO_PLATFORMS).__enter__()
        try:
            one, two, summary = [], [], ""
            root = os.path.join(work, "multi", "root-cold")
            os.makedirs(os.path.dirname(root), exist_ok=True)
            for _ in range(runs):
                shutil.rmtree(root, ignore_errors=True)
                one.append(run_measured(seal, root, ctx)[0])
                shutil.rmtree(root, ignore_errors=True)
                t, _r, summary = run_measured(seal, root, ctx, ("--platform", TWO_PLATFORMS))
                two.append(t)
            shutil.rmtree(root, ignore_errors=True)
        finally:
            if registry:
                registry.__exit__(None, None, None)
        m1, m2 = statistics.median(one), statistics.median(two)
        results[name] = {"one_runs": one, "two_runs": two, "one_median_s": m1, "two_median_s": m2,
                         "ratio": m2 / m1, "two_summary": summary}
    return results


def scenario(name, seal, work, runs):
    if name == "multi":
        return multi(seal, work, runs)
    ctx = os.path.join(work, name, "ctx")
    if name == "cluster":
        os.makedirs(ctx, exist_ok=True)
        GENERATORS[name](ctx)  # idempotent; names embed the registry address
        with ClusterRegistry(seal, os.path.dirname(ctx)) as registry:
            return measure(name, seal, work, runs, ctx, registry)
    if not os.path.exists(os.path.join(ctx, "Kubefile")):
        shutil.rmtree(ctx, ignore_errors=True)
        os.makedirs(ctx)
        GENERATORS[name](ctx)
    return measure(name, seal, work, runs, ctx, None)


def measure(name, seal, work, runs, ctx, registry):
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
    if name == "big":
        # The floor pipeline over the same bytes, interleaved with seal's cold builds.
        floor, seal_cold, size = [], [], 0
        for i in range(runs):
            t, size = floor_pipeline(ctx)
            floor.append(t)
            root = os.path.join(work, name, "root-cold")
            prepare_root(name, seal, root, ctx)
            seal_cold.append(run_measured(seal, root, ctx)[0])
        f, c = statistics.median(floor), statistics.median(seal_cold)
        results["floor_pipeline"] = {"runs": floor, "median_s": f, "bytes": size, "seal_cold_runs": seal_cold,
                                     "seal_cold_median_s": c, "floor_mb_s": size / f / 1e6,
                                     "seal_mb_s": size / c / 1e6, "ratio": f / c}
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
    if registry:
        # Registry requests of a no-op build, with the default pull policy and with --pull never.
        for label, extra in (("noop_requests", ()), ("noop_requests_pull_never", ("--pull", "never"))):
            before = len(registry.requests())
            run_measured(seal, root, ctx, extra)
            made = registry.requests()[before:]
            results[label] = {"count": len(made), "requests": made}
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
        if name == "multi":
            for sub, r in res.items():
                lines.append(f"| multi {sub} | cold, 1 platform | {r['one_median_s'] * 1000:.1f} ms | | |")
                summary = r["two_summary"].replace("|", "/")
                lines.append(f"| multi {sub} | cold, 2 platforms | {r['two_median_s'] * 1000:.1f} ms | | "
                             f"{r['ratio']:.2f}x one platform; {summary} |")
            continue
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
        if "floor_pipeline" in res:
            fp = res["floor_pipeline"]
            lines.append(f"| {name} | floor pipeline | {fp['median_s'] * 1000:.1f} ms | | {fp['floor_mb_s']:.0f} MB/s; "
                         f"seal cold {fp['seal_mb_s']:.0f} MB/s = {fp['ratio'] * 100:.0f}% of the floor |")
        for label in ("noop_requests", "noop_requests_pull_never"):
            if label in res:
                kinds = collections.Counter(
                    r.split()[0] + (" manifest" if "/manifests/" in r else " blob" if "/blobs/" in r else " " + r.split()[1])
                    for r in res[label]["requests"])
                kinds = ", ".join(f"{k} x{n}" for k, n in sorted(kinds.items()))
                lines.append(f"| {name} | {label.replace('_', ' ')} | {res[label]['count']} | | {kinds} |")
    table = "\n".join(lines) + "\n"
    with open(os.path.join(args.out, "seal-scenarios.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
