//! The command line itself: `--print-llb`, help texts, parallelism and progress modes.

mod common;

use common::{Ctx, Seal};

fn two_copies() -> Ctx {
    let ctx = Ctx::new();
    ctx.file("dir1/a.txt", "a")
        .file("dir2/b.txt", "b")
        .kubefile("FROM scratch\nCOPY dir1 a\nCOPY dir2 b\nLABEL k=v\n");
    ctx
}

#[test]
fn build_mode_lite_lowers_without_image_collection() {
    let ctx = two_copies();
    let seal = Seal::new();
    let out = seal.run_in(
        ctx.path(),
        &[
            "build",
            "--build-mode",
            "lite",
            "--print-llb",
            "-t",
            "x:1",
            ".",
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let def: serde_json::Value = serde_json::from_str(&out.stdout).expect("LLB is JSON");
    // scratch, then per COPY its Local source, the rootfs below it (a merge) and the FileOp,
    // and the final rootfs merge.
    assert_eq!(def["nodes"].as_array().expect("nodes").len(), 8);
    assert_eq!(def["output"], 7);
}

#[test]
fn print_llb_shows_the_graph_and_writes_nothing() {
    let ctx = two_copies();
    let seal = Seal::new();
    let out = seal.run_in(ctx.path(), &["build", "--print-llb", "-t", "x:1", "."]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let def: serde_json::Value = serde_json::from_str(&out.stdout).expect("LLB is JSON");
    let nodes = def["nodes"].as_array().expect("nodes");
    // scratch, per COPY a (local, rootfs below, file) triple — the FileOp reads of the rootfs
    // below only where its destination resolves — the merge of the rootfs, then image
    // collection: the rootfs it reads (neither COPY can write manifests/ or charts/, so only
    // the base: the first COPY's rootfs merge, collapsed), the collect node, the registry
    // layer and the merge that is the output.
    assert_eq!(nodes.len(), 11);
    assert_eq!(def["output"], 10);
    assert_eq!(nodes[3]["inputs"], serde_json::json!([1, 2]));
    assert_eq!(nodes[6]["inputs"], serde_json::json!([4, 5]));
    assert_eq!(nodes[5]["inputs"], serde_json::json!([0, 3]));
    assert!(nodes[7]["op"]["merge"].is_object());
    assert_eq!(nodes[2]["inputs"], serde_json::json!([0]));
    assert!(nodes[8]["op"]["collect"].is_object());
    assert_eq!(nodes[8]["inputs"], serde_json::json!([2]));
    assert!(nodes[9]["op"]["registry_layer"].is_object());
    assert_eq!(nodes[10]["inputs"], serde_json::json!([7, 9]));
    let descriptions: Vec<&str> = nodes
        .iter()
        .filter(|n| n["metadata"]["quiet"] != true)
        .filter_map(|n| n["metadata"]["description"].as_str())
        .collect();
    assert_eq!(
        descriptions,
        [
            "[1/3] FROM scratch",
            "[2/3] COPY dir1 a",
            "[3/3] COPY dir2 b"
        ]
    );
    assert!(nodes.iter().all(|n| n["digest"]
        .as_str()
        .is_some_and(|d| d.starts_with("blake3:"))));
    assert!(
        !seal.root().exists(),
        "--print-llb must not create the store"
    );

    // Digests depend on the definition, not on where the Kubefile's lines are.
    ctx.kubefile(
        "FROM scratch\n\n# a comment moves every span\nCOPY dir1 a\nCOPY dir2 b\nLABEL k=v\n",
    );
    let again: serde_json::Value = serde_json::from_str(
        &seal
            .run_in(ctx.path(), &["build", "--print-llb", "-t", "x:1", "."])
            .stdout,
    )
    .unwrap();
    let digests = |d: &serde_json::Value| -> Vec<String> {
        d["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["digest"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(digests(&def), digests(&again));
}

#[test]
fn help_explains_every_build_flag() {
    let out = Seal::new().run_in(std::path::Path::new("/"), &["build", "--help"]);
    assert_eq!(out.code, 0);
    for flag in [
        "--file",
        "--tag",
        "--build-arg",
        "--no-cache",
        "--progress",
        "--max-parallelism",
        "--print-llb",
        "--compression",
        "--mode",
        "--root",
    ] {
        assert!(
            out.stdout.contains(flag),
            "build --help lacks {flag}:\n{}",
            out.stdout
        );
    }
    let top = Seal::new().run_in(std::path::Path::new("/"), &["--help"]);
    for verb in ["build", "images", "inspect", "save"] {
        assert!(top.stdout.contains(verb), "seal --help lacks {verb}");
    }
}

#[test]
fn one_step_at_a_time_gives_the_same_image() {
    let ctx = two_copies();
    let parallel = Seal::new().digest(ctx.path(), "x:1", &[]);
    let serial = Seal::new().digest(ctx.path(), "x:1", &["--max-parallelism", "1"]);
    assert_eq!(parallel, serial);
}

#[test]
fn json_progress_is_one_object_per_line() {
    let ctx = two_copies();
    let seal = Seal::new();
    let mut cmd = seal.command();
    cmd.current_dir(ctx.path())
        .args(["build", "--progress", "json", "-t", "x:1", "."]);
    let out = cmd.output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let started = events.iter().filter(|e| e["event"] == "started").count();
    let done = events.iter().filter(|e| e["event"] == "done").count();
    assert_eq!((started, done), (3, 3));
    assert!(events
        .iter()
        .filter(|e| e["event"] != "summary")
        .all(|e| e["time"].as_f64().is_some() && e["name"].is_string()));
}

#[test]
fn a_second_build_waits_for_the_store_lock_instead_of_failing() {
    let ctx = two_copies();
    let seal = Seal::new();
    seal.build_ok(ctx.path(), "x:1", &[]);
    let spawn = || {
        let mut cmd = seal.command();
        cmd.current_dir(ctx.path())
            .args(["build", "--progress", "plain", "-t", "x:1", "."]);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children: Vec<_> = (0..3).map(|_| spawn()).collect();
    let digests: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .collect();
    assert!(digests.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn images_and_inspect_answer_while_a_build_holds_the_store() {
    use std::io::{BufRead, BufReader};
    let seal = Seal::new();
    let done = two_copies();
    let digest = seal.digest(done.path(), "done:1", &[]);
    let slow = Ctx::new();
    slow.file("f", "x")
        .kubefile("FROM scratch\nCOPY f .\nRUN sleep 30\n");
    let mut build = seal
        .command()
        .current_dir(slow.path())
        .args(["build", "--progress", "plain", "-t", "slow:1", "."])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(build.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("RUN sleep") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the build ended early"
        );
    }
    // The build holds the store now; read-only commands must not queue behind it.
    let images = seal.run_in(slow.path(), &["images", "--format", "json"]);
    let inspect = seal.run_in(slow.path(), &["inspect", "done:1"]);
    let still_running = build.try_wait().unwrap().is_none();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &build.id().to_string()])
        .status();
    let _ = build.wait();
    assert!(
        still_running,
        "the build finished before the read-only commands ran"
    );
    assert_eq!(images.code, 0, "{}", images.stderr);
    assert!(
        images.stdout.contains("docker.io/sealerio/done:1"),
        "{}",
        images.stdout
    );
    assert_eq!(inspect.code, 0, "{}", inspect.stderr);
    let inspect: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    assert_eq!(inspect["digest"], digest.as_str());
}

/// Image-collection flags with bad input fail before anything is built, naming the flag.
#[test]
fn collection_flags_with_bad_input_are_refused() {
    let ctx = two_copies();
    let seal = Seal::new();
    let missing = seal.run_in(
        ctx.path(),
        &["build", "--image-list", "nope.txt", "-t", "x:1", "."],
    );
    assert_eq!(missing.code, 1, "{}", missing.stderr);
    assert!(
        missing.stderr.contains("--image-list") && missing.stderr.contains("nope.txt"),
        "{}",
        missing.stderr
    );
    let no_equals = seal.run_in(
        ctx.path(),
        &["build", "--chart-values", "charts/app", "-t", "x:1", "."],
    );
    assert_eq!(no_equals.code, 2, "{}", no_equals.stderr);
    assert!(
        no_equals.stderr.contains("CHART_DIR=FILE"),
        "{}",
        no_equals.stderr
    );
    ctx.file("bad-values.yaml", "- a list, not a mapping\n");
    let not_a_map = seal.run_in(
        ctx.path(),
        &[
            "build",
            "--chart-values",
            "charts/app=bad-values.yaml",
            "-t",
            "x:1",
            ".",
        ],
    );
    assert_eq!(not_a_map.code, 1, "{}", not_a_map.stderr);
    assert!(
        not_a_map.stderr.contains("bad-values.yaml") && not_a_map.stderr.contains("mapping"),
        "{}",
        not_a_map.stderr
    );
    assert!(
        !seal.root().exists(),
        "nothing may be written for bad flags"
    );
}
