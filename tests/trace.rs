//! `seal build --trace FILE` (issue 20): the `run` scenario's cold build (benches/scenarios.py:
//! `FROM base:1; COPY dir1 a; COPY dir2 b; RUN echo x > c` over many small files, here fewer
//! of them) as a Chrome trace: valid JSON in the Trace Event Format, every step with its
//! phases on the thread that ran it, and step durations that agree with `--progress json`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{Ctx, Seal};
use serde_json::Value;

/// The busybox base image `base:1`, as the `run` scenario imports it.
fn busybox_base(seal: &Seal) {
    let ctx = Ctx::new();
    let bin = ctx.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("busybox-static is installed (scripts/install-system-packages.sh)");
    for applet in ["sh", "echo"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    ctx.kubefile("FROM scratch\nCOPY rootfs/. .\n");
    seal.build_ok(ctx.path(), "base:1", &[]);
}

/// The `run` scenario's context, scaled down: dir1/ and dir2/ of nested small files.
fn run_context(files_per_dir: usize) -> Ctx {
    let ctx = Ctx::new();
    let mut seed = 42u64;
    for top in ["dir1", "dir2"] {
        for i in 0..files_per_dir {
            // A small LCG: sizes of 1-8 KiB, bytes that do not compress to nothing.
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let size = 1024 + (seed >> 33) as usize % 7168;
            let bytes: Vec<u8> = (0..size)
                .map(|j| (seed >> (j % 56)) as u8 ^ j as u8)
                .collect();
            ctx.file(&format!("{top}/d{:02}/f{i:04}.dat", i % 20), bytes);
        }
    }
    ctx.kubefile("FROM base:1\nCOPY dir1 a\nCOPY dir2 b\nRUN echo x > c\n");
    ctx
}

fn read_trace(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("--trace wrote its file");
    let doc: Value = serde_json::from_str(&text).expect("the trace parses as JSON");
    doc["traceEvents"]
        .as_array()
        .expect("a traceEvents array")
        .clone()
}

/// The complete (`X`) events, each checked for the Trace Event Format's fields.
fn slices(events: &[Value]) -> Vec<&Value> {
    let named_threads: Vec<&Value> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .map(|e| &e["tid"])
        .collect();
    let slices: Vec<&Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    for s in &slices {
        assert!(s["name"].is_string(), "no name: {s}");
        assert!(s["ts"].as_f64().is_some_and(|t| t >= 0.0), "no ts: {s}");
        assert!(s["dur"].as_f64().is_some_and(|d| d >= 0.0), "no dur: {s}");
        assert!(s["pid"].is_u64() && s["tid"].is_u64(), "no pid/tid: {s}");
        assert!(
            named_threads.contains(&&s["tid"]),
            "track {} has no thread_name metadata",
            s["tid"]
        );
    }
    slices
}

fn within(inner: &Value, outer: &Value) -> bool {
    inner["tid"] == outer["tid"] && during(inner, outer)
}

/// Whether `inner` runs while `outer` does, on any thread (a step's parallel unpacks run on
/// worker threads of their own: one track each).
fn during(inner: &Value, outer: &Value) -> bool {
    let (its, idur) = (
        inner["ts"].as_f64().unwrap(),
        inner["dur"].as_f64().unwrap(),
    );
    let (ots, odur) = (
        outer["ts"].as_f64().unwrap(),
        outer["dur"].as_f64().unwrap(),
    );
    its >= ots - 1.0 && its + idur <= ots + odur + 1.0
}

#[test]
fn the_run_scenario_cold_build_as_a_trace() {
    let seal = Seal::new();
    busybox_base(&seal);
    let ctx = run_context(600);
    let dir = tempfile::TempDir::new().unwrap();
    let trace = dir.path().join("build.json");
    let out = seal.run_in(
        ctx.path(),
        &[
            "build",
            "--progress",
            "json",
            "-t",
            "bench:1",
            "--trace",
            trace.to_str().unwrap(),
            ".",
        ],
    );
    assert_eq!(out.code, 0, "build failed:\n{}", out.stderr);
    let progress: Vec<Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).expect("--progress json lines"))
        .collect();
    let done: BTreeMap<String, f64> = progress
        .iter()
        .filter(|e| e["event"] == "done")
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["elapsed"].as_f64().unwrap(),
            )
        })
        .collect();
    let events = read_trace(&trace);
    let slices = slices(&events);
    let steps: Vec<&Value> = slices
        .iter()
        .copied()
        .filter(|s| s["cat"] == "step")
        .collect();
    let step_names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(
        step_names
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        done.keys().map(String::as_str).collect(),
        "one step slice per executed step"
    );

    // Each step's phases, named after it (args.step), nested in its slice where they run on
    // its thread.
    let of_step = |step: &str, phase: &str| -> Vec<&Value> {
        slices
            .iter()
            .copied()
            .filter(|s| s["name"] == phase && s["args"]["step"] == step)
            .collect()
    };
    let step_slice = |needle: &str| -> &Value {
        steps
            .iter()
            .copied()
            .find(|s| s["name"].as_str().unwrap().contains(needle))
            .unwrap_or_else(|| panic!("no step slice {needle}: {step_names:?}"))
    };
    for copy in ["COPY dir1 a", "COPY dir2 b"] {
        let step = step_slice(copy);
        let name = step["name"].as_str().unwrap();
        for phase in ["context scan", "hashing", "cache lookup", "write layer"] {
            assert!(!of_step(name, phase).is_empty(), "{name}: no {phase} slice");
        }
        let scan = of_step(name, "context scan");
        assert!(scan[0]["args"]["entries"].as_u64().unwrap() >= 600);
        let hashed: u64 = of_step(name, "hashing")
            .iter()
            .filter_map(|h| h["args"]["bytes"].as_u64())
            .sum();
        assert!(hashed >= 600 * 1024, "{name}: hashing read {hashed} bytes");
        let write = of_step(name, "write layer")[0];
        assert!(within(write, step), "{name}: write layer outside the step");
        assert!(write["args"]["bytes"].as_u64().unwrap() >= 600 * 1024);
        assert!(write["args"]["blob_bytes"].as_u64().unwrap() > 0);
        // The streaming pass's four phases, back to back inside the write.
        let mut sum = 0.0;
        for phase in ["tar", "compression", "blob write"] {
            let p = of_step(name, phase);
            assert_eq!(p.len(), 1, "{name}: one {phase} slice");
            assert!(within(p[0], write), "{name}: {phase} outside write layer");
            sum += p[0]["dur"].as_f64().unwrap();
        }
        let hashing_in_write = of_step(name, "hashing")
            .into_iter()
            .find(|h| within(h, write))
            .expect("hashing inside the write layer");
        sum += hashing_in_write["dur"].as_f64().unwrap();
        let total = write["dur"].as_f64().unwrap();
        // The sums cover the write but for what follows the last of them (microseconds;
        // more when the thread is preempted right there).
        let covered = sum >= total * 0.8 || total - sum < 5000.0;
        assert!(sum <= total + 4.0 && covered, "phases {sum} of {total}");
        // A RUN mounts this layer: its snapshot is made from the tar as it is written, on a
        // thread of its own, and not unpacked again by the RUN (issue 15).
        assert_eq!(
            of_step(name, "snapshot").len(),
            1,
            "{name}: one snapshot slice"
        );
    }
    let run = step_slice("RUN echo x > c");
    let run_name = run["name"].as_str().unwrap();
    for phase in ["unpack", "RUN", "diff", "write layer", "cache lookup"] {
        let found = of_step(run_name, phase);
        assert!(!found.is_empty(), "RUN: no {phase} slice");
        match phase {
            "cache lookup" => {}
            "unpack" => assert!(found.iter().all(|p| during(p, run)), "RUN: unpack outside"),
            _ => assert!(found.iter().all(|p| within(p, run)), "RUN: {phase} outside"),
        }
    }
    // Only the base layer is unpacked for the RUN (its build had no RUN), bytes in the args;
    // both COPY layers' snapshots were made while they were written.
    assert_eq!(of_step(run_name, "unpack").len(), 1);
    assert!(of_step(run_name, "unpack")
        .iter()
        .all(|u| u["args"]["bytes"].as_u64().is_some_and(|b| b > 0)));

    // The steps add up to what --progress json reports, within 10%. A step's `elapsed` there
    // is its work and then its cache record's write (which can include the store's writable
    // open, tens of milliseconds): the step slice plus its `cache save` slice.
    let saves: f64 = slices
        .iter()
        .filter(|s| s["name"] == "cache save")
        .filter(|s| {
            steps
                .iter()
                .any(|step| step["args"]["node"] == s["args"]["node"])
        })
        .map(|s| s["dur"].as_f64().unwrap())
        .sum();
    let work: f64 = steps.iter().map(|s| s["dur"].as_f64().unwrap()).sum();
    let traced = (work + saves) / 1e6;
    let reported: f64 = done.values().sum();
    assert!(
        (traced - reported).abs() <= reported * 0.10,
        "trace steps {traced:.4}s vs --progress json {reported:.4}s"
    );
}

#[test]
fn a_cached_step_shows_its_lookup_and_no_phases() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("dir1/a", "a")
        .kubefile("FROM scratch\nCOPY dir1 a\n");
    seal.build_ok(ctx.path(), "t:1", &[]);
    let dir = tempfile::TempDir::new().unwrap();
    let trace = dir.path().join("t.json");
    seal.build_ok(ctx.path(), "t:1", &["--trace", trace.to_str().unwrap()]);
    let events = read_trace(&trace);
    let slices = slices(&events);
    let lookup = slices
        .iter()
        .find(|s| s["name"] == "cache lookup" && s["args"]["step"] == "[2/2] COPY dir1 a")
        .expect("the COPY's cache lookup");
    assert_eq!(lookup["args"]["hit"], true);
    assert!(
        !slices.iter().any(|s| s["name"] == "write layer"),
        "a cached build writes no layer"
    );
}

#[test]
fn a_trace_into_a_missing_directory_is_refused_before_building() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("a", "a").kubefile("FROM scratch\nCOPY a a\n");
    let out = seal.build(ctx.path(), "t:1", &["--trace", "/nonexistent/dir/t.json"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--trace /nonexistent/dir/t.json"),
        "{}",
        out.stderr
    );
    assert!(!seal.root().exists(), "nothing was built");
}

#[test]
fn a_push_and_a_from_pull_show_each_blob_transfer_with_its_bytes() {
    let Some(registry) = common::registry::Registry::start(None, |_| String::new()) else {
        return;
    };
    let pusher = Seal::new();
    let base = Ctx::new();
    base.file("etc/data", vec![7u8; 64 * 1024])
        .kubefile("FROM scratch\nCOPY etc etc\n");
    let name = format!("{}/t/base:1", registry.host);
    pusher.build_ok(base.path(), &name, &["--build-mode", "lite"]);
    let dir = tempfile::TempDir::new().unwrap();
    let push_trace = dir.path().join("push.json");
    let out = pusher.run_in(
        base.path(),
        &[
            "--insecure-registry",
            &registry.host,
            "push",
            "--trace",
            push_trace.to_str().unwrap(),
            &name,
        ],
    );
    assert_eq!(out.code, 0, "push failed:\n{}", out.stderr);
    let events = read_trace(&push_trace);
    let pushes: Vec<&Value> = slices(&events)
        .into_iter()
        .filter(|s| s["name"] == "push")
        .collect();
    assert_eq!(pushes.len(), 2, "the config and the layer: {pushes:?}");
    for push in &pushes {
        assert_eq!(push["args"]["outcome"], "uploaded");
        assert!(push["args"]["bytes"].as_u64().unwrap() > 0);
    }
    assert!(events
        .iter()
        .any(|e| e["name"] == "process_name" && e["args"]["name"] == "seal push"));

    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("a", "a")
        .kubefile(&format!("FROM {name}\nCOPY a a\n"));
    let trace = dir.path().join("t.json");
    let out = seal.run_in(
        ctx.path(),
        &[
            "--insecure-registry",
            &registry.host,
            "build",
            "--progress",
            "plain",
            "--build-mode",
            "lite",
            "-t",
            "app:1",
            "--trace",
            trace.to_str().unwrap(),
            ".",
        ],
    );
    assert_eq!(out.code, 0, "build failed:\n{}", out.stderr);
    let events = read_trace(&trace);
    let pulls: Vec<&Value> = slices(&events)
        .into_iter()
        .filter(|s| s["name"] == "pull")
        .collect();
    // The config and the one layer, each with its digest, repository and size.
    assert_eq!(pulls.len(), 2, "{pulls:?}");
    for pull in &pulls {
        assert_eq!(pull["args"]["repo"], "t/base");
        assert!(pull["args"]["blob"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"));
        assert!(pull["args"]["bytes"].as_u64().unwrap() > 0);
    }
}
