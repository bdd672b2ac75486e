//! `seal bench` (issue 20): BENCHMARKS.md's phases on the user's own Kubefile, in a scratch
//! store and a scratch copy of the context: what ran in each phase, the edited file, base
//! images copied from the user's store, and neither the user's context nor store touched.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::{Ctx, Seal, OLD};
use serde_json::Value;

/// Every entry under `dir` with its size, mode and mtime: what "untouched" compares.
fn snapshot(dir: &Path) -> BTreeMap<String, (u64, u32, i64, i64)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let meta = entry.path().symlink_metadata().unwrap();
            let rel = entry
                .path()
                .strip_prefix(dir)
                .unwrap()
                .display()
                .to_string();
            out.insert(
                rel,
                (meta.len(), meta.mode(), meta.mtime(), meta.mtime_nsec()),
            );
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    out
}

fn bench_json(seal: &Seal, ctx: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["bench", "--runs", "2", "--format", "json"];
    args.extend_from_slice(extra);
    args.push(".");
    let out = seal.run_in(ctx, &args);
    assert_eq!(out.code, 0, "seal bench failed:\n{}", out.stderr);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("--format json is JSON ({e}):\n{}", out.stdout))
}

/// Per phase: step name → how many of its runs executed it.
fn executed(report: &Value) -> BTreeMap<String, BTreeMap<String, u64>> {
    report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let steps = p["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    (
                        s["step"].as_str().unwrap().to_string(),
                        s["executed"].as_u64().unwrap(),
                    )
                })
                .collect();
            (p["phase"].as_str().unwrap().to_string(), steps)
        })
        .collect()
}

#[test]
fn the_four_phases_run_in_scratch_and_say_what_ran() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("dir1/x/a", "a")
        .file("dir1/x/b", "b")
        .file("dir2/q/one", "1")
        .file("dir2/p/two", "2")
        .kubefile("FROM scratch\nCOPY dir1 a\nCOPY dir2 b\n")
        .age();
    let before = snapshot(ctx.path());
    let report = bench_json(&seal, ctx.path(), &["--build-mode", "lite"]);
    assert_eq!(
        report["edited"], "dir2/p/two",
        "the first file of the last COPY"
    );
    let phases: Vec<&str> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(phases, ["cold", "noop", "touch1", "change1"]);
    let ran = executed(&report);
    let all = |phase: &str, n: u64| {
        for (step, count) in &ran[phase] {
            assert_eq!(*count, n, "{phase}: {step} executed {count} of 2 runs");
        }
    };
    all("cold", 2);
    all("noop", 0);
    all("touch1", 0);
    assert_eq!(ran["change1"]["[3/3] COPY dir2 b"], 2);
    assert_eq!(ran["change1"]["[2/3] COPY dir1 a"], 0);
    for phase in report["phases"].as_array().unwrap() {
        assert_eq!(phase["runs_s"].as_array().unwrap().len(), 2);
        assert!(phase["median_s"].as_f64().unwrap() > 0.0);
        assert!(phase["peak_rss_kib"].as_u64().unwrap() > 1024);
    }
    assert_eq!(snapshot(ctx.path()), before, "the context is untouched");
    assert!(!seal.root().exists(), "the user's store is never created");
}

#[test]
fn base_images_come_from_the_users_store_which_stays_untouched() {
    let seal = Seal::new();
    let base = Ctx::new();
    base.file("etc/os", "base\n")
        .kubefile("FROM scratch\nCOPY etc etc\n");
    seal.build_ok(base.path(), "base:1", &[]);
    let ctx = Ctx::new();
    ctx.file("conf/a.yaml", "a: 1\n")
        .kubefile("FROM base:1\nCOPY conf conf\n")
        .age();
    let store_before = snapshot(seal.root());
    let report = bench_json(
        &seal,
        ctx.path(),
        &["--build-mode", "lite", "--edit", "conf/a.yaml"],
    );
    assert_eq!(report["seeded_images"], serde_json::json!(["base:1"]));
    assert_eq!(report["edited"], "conf/a.yaml");
    let ran = executed(&report);
    assert_eq!(ran["change1"]["[2/2] COPY conf conf"], 2);
    assert_eq!(ran["noop"]["[2/2] COPY conf conf"], 0);
    assert_eq!(
        snapshot(seal.root()),
        store_before,
        "the user's store is untouched"
    );
    assert_eq!(
        std::fs::read_to_string(ctx.path().join("conf/a.yaml")).unwrap(),
        "a: 1\n"
    );
}

#[test]
fn the_table_fits_80_columns_and_bad_edits_are_refused() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file(
        "a-rather-long-directory-name/with-a-long-file-name.txt",
        "x",
    )
    .kubefile(
        "FROM scratch\nCOPY a-rather-long-directory-name/with-a-long-file-name.txt /usr/share/some/long/destination/path/\n",
    )
    .touch_all(OLD);
    let out = seal.run_in(
        ctx.path(),
        &["bench", "--runs", "1", "--build-mode", "lite", "."],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    for line in out.stdout.lines() {
        assert!(line.chars().count() <= 80, "wider than 80: {line}");
    }
    for word in [
        "cold", "noop", "touch1", "change1", "median", "peak RSS", "cached",
    ] {
        assert!(out.stdout.contains(word), "no {word} in:\n{}", out.stdout);
    }
    assert!(
        out.stdout.contains("[2/2] COPY a-rather-long"),
        "{}",
        out.stdout
    );

    for (edit, message) in [
        ("missing.txt", "not a regular file of the context"),
        (
            "a-rather-long-directory-name",
            "not a regular file of the context",
        ),
        ("/etc/passwd", "not inside the context"),
    ] {
        let out = seal.run_in(ctx.path(), &["bench", "--edit", edit, "."]);
        assert_eq!(out.code, 2, "--edit {edit}: {}", out.stderr);
        assert!(
            out.stderr.contains(message),
            "--edit {edit}: {}",
            out.stderr
        );
    }
}
