//! Multi-stage builds: stages in parallel, `--target`, `COPY --from`, `FROM <stage>`, and
//! `--no-cache-filter` by stage.

mod common;

use std::collections::BTreeMap;

use common::{Ctx, Seal, Step};

const TWO_SLOW_STAGES: &str = "\
FROM scratch AS one
RUN sleep 2 && echo built-one > one.out

FROM scratch AS two
RUN sleep 2 && mkdir -p d && echo x > d/x

FROM scratch AS unused
RUN echo never > never

FROM scratch
COPY --from=one one.out results
COPY --from=two /d/. results/d
";

/// (started, finished) times of each step, from `--progress json`.
fn spans(stderr: &str) -> BTreeMap<String, (f64, f64)> {
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for line in stderr.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(name), Some(time)) = (event["name"].as_str(), event["time"].as_f64()) else {
            continue;
        };
        let entry = out.entry(name.to_string()).or_insert((f64::NAN, f64::NAN));
        match event["event"].as_str() {
            Some("started") => entry.0 = time,
            Some("done") => entry.1 = time,
            _ => {}
        }
    }
    out
}

#[test]
fn independent_stages_run_in_parallel_and_unused_ones_not_at_all() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.kubefile(TWO_SLOW_STAGES);
    let started = std::time::Instant::now();
    let out = seal.run_in(
        ctx.path(),
        &["build", "--progress", "json", "-t", "m:1", "."],
    );
    let wall = started.elapsed();
    assert_eq!(out.code, 0, "{}", out.stderr);
    eprintln!("two stages of `sleep 2` built in {wall:?}");
    let spans = spans(&out.stderr);
    let one = spans
        .iter()
        .find(|(n, _)| n.contains("sleep 2 && echo built-one"))
        .expect("stage one ran")
        .1;
    let two = spans
        .iter()
        .find(|(n, _)| n.contains("sleep 2 && mkdir"))
        .expect("stage two ran")
        .1;
    // Each started before the other finished: they overlapped.
    assert!(
        one.0 < two.1 && two.0 < one.1,
        "stages did not overlap: one {one:?}, two {two:?}"
    );
    assert!(
        !spans.keys().any(|n| n.contains("echo never")),
        "the unused stage was built: {spans:?}"
    );
}

#[test]
fn target_builds_only_the_named_stage_and_what_it_needs() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.file("a.txt", "a").kubefile(
        "FROM scratch AS base\nCOPY a.txt .\nENV FROM_BASE=yes\n\nFROM base AS app\nRUN cat a.txt > b.txt\n\nFROM scratch AS other\nRUN echo other > o\n",
    );
    let out = seal.build_ok(ctx.path(), "t:1", &["--target", "app"]);
    let steps = out.steps();
    assert!(
        steps.keys().any(|d| d.contains("RUN cat a.txt")),
        "{steps:?}"
    );
    assert!(!steps.keys().any(|d| d.contains("echo other")), "{steps:?}");
    let inspect = seal.inspect("t:1");
    assert_eq!(
        inspect["layers"].as_array().unwrap().len(),
        2,
        "COPY of base + RUN of app"
    );
    let env = inspect["config"]["config"]["Env"].to_string();
    assert!(
        env.contains("FROM_BASE=yes"),
        "FROM <stage> carries its ENV: {env}"
    );

    // Bad input, so a usage error (issue 12.8), like --no-cache-filter's.
    let bad = seal.build(ctx.path(), "t:1", &["--target", "nope"]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr
            .contains("--target `nope`: no stage has that name"),
        "{}",
        bad.stderr
    );
    assert!(bad.stderr.contains("base, app, other"), "{}", bad.stderr);
}

#[test]
fn copy_from_an_image_in_the_store() {
    let seal = Seal::new();
    let base = Ctx::new();
    base.file("tools/kubectl", "binary")
        .kubefile("FROM scratch\nCOPY tools .\n");
    seal.build_ok(base.path(), "tools:1", &[]);
    let ctx = Ctx::new();
    ctx.kubefile("FROM scratch\nCOPY --from=tools:1 /tools/kubectl bin\n");
    seal.build_ok(ctx.path(), "c:1", &["--compression", "gzip"]);
    let inspect = seal.inspect("c:1");
    let blob = inspect["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let listing = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(seal.root().join("blobs/sha256").join(blob))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout),
        "bin/\nbin/kubectl\n"
    );

    let missing = Ctx::new();
    missing.kubefile("FROM scratch\nCOPY --from=tools:1 /nope bin\n");
    let out = seal.build(missing.path(), "c:2", &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("`nope` is not in that stage's (or image's) filesystem"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Kubefile:2:"), "{}", out.stderr);

    let unknown = Ctx::new();
    unknown.kubefile("FROM scratch AS a\nFROM scratch\nCOPY --from=b x y\n");
    let out = seal.build(unknown.path(), "c:3", &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("COPY --from=b: no earlier stage has that name"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Kubefile:3:6"), "{}", out.stderr);
}

#[test]
fn no_cache_filter_by_stage_reruns_only_that_stage() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.kubefile("FROM scratch AS one\nRUN echo one > one\n\nFROM scratch AS two\nRUN echo two > two\n\nFROM scratch\nCOPY --from=one one .\nCOPY --from=two two .\n");
    let first = seal.digest(ctx.path(), "n:1", &[]);
    let again = seal.build_ok(ctx.path(), "n:1", &["--no-cache-filter", "two"]);
    assert_eq!(again.step("RUN echo two"), Step::Done);
    assert_eq!(again.step("RUN echo one"), Step::Cached);
    // The re-run produced the same layer, so the final stage's copies stay cached.
    assert_eq!(again.step("COPY --from=two"), Step::Cached);
    assert_eq!(again.digest(), first);
    let bad = seal.build(ctx.path(), "n:1", &["--no-cache-filter", "three"]);
    assert_eq!(bad.code, 2);
}
