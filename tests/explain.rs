//! `seal build --explain`, end to end: for one edit of each kind, the exact reason each step
//! that ran gives, in plain progress (`#N WHY: ...`) and as the `reason` of a JSON `explain`
//! event; and a no-op build, which explains nothing.

mod common;

use std::collections::BTreeMap;

use common::{Ctx, Out, Seal};

/// `description -> reason` from `--progress plain` output.
fn plain_reasons(out: &Out) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let mut reasons = BTreeMap::new();
    for line in out.stderr.lines() {
        let Some((number, text)) = line.strip_prefix('#').and_then(|l| l.split_once(' ')) else {
            continue;
        };
        if let Some(reason) = text.strip_prefix("WHY: ") {
            let name: &String = names
                .get(number)
                .unwrap_or_else(|| panic!("WHY before the step's line:\n{}", out.stderr));
            let old = reasons.insert(name.clone(), reason.to_string());
            assert!(old.is_none(), "two reasons for {name}:\n{}", out.stderr);
        } else if text.starts_with('[') {
            names
                .entry(number.to_string())
                .or_insert_with(|| text.to_string());
        }
    }
    reasons
}

/// `description -> reason` from `--progress json` output; every explain event must follow its
/// step's `started` event.
fn json_reasons(out: &Out) -> BTreeMap<String, String> {
    let mut started = std::collections::BTreeSet::new();
    let mut reasons = BTreeMap::new();
    for line in out.stderr.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let name = event["name"].as_str().unwrap_or_default().to_string();
        match event["event"].as_str() {
            Some("started") => {
                started.insert(name);
            }
            Some("explain") => {
                assert!(started.contains(&name), "explained before started: {line}");
                let reason = event["reason"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no reason in {line}"));
                reasons.insert(name, reason.to_string());
            }
            _ => {}
        }
    }
    reasons
}

/// Two stores that built `ctx` as `tag` with `before`; then `edit`, and both rebuild with
/// `--explain` and `after`, one with plain progress, one with JSON. Returns the reasons, which
/// must be the same in both, and every step that ran has one.
fn explain_edit(ctx: &Ctx, before: &[&str], edit: impl FnOnce(&Ctx), after: &[&str]) -> Reasons {
    let (plain, json) = (Seal::new(), Seal::new());
    plain.build_ok(ctx.path(), "app:1", before);
    json.build_ok(ctx.path(), "app:1", before);
    edit(ctx);
    explain_both(&plain, &json, ctx, after)
}

/// Rebuild `ctx` as `app:1` with `--explain` in both stores and compare the reasons.
fn explain_both(plain: &Seal, json: &Seal, ctx: &Ctx, after: &[&str]) -> Reasons {
    let mut args = vec!["--explain"];
    args.extend_from_slice(after);
    let out = plain.build_ok(ctx.path(), "app:1", &args);
    let reasons = plain_reasons(&out);
    let ran: Vec<String> = out
        .steps()
        .into_iter()
        .filter(|(_, s)| *s == common::Step::Done)
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        reasons.keys().cloned().collect::<Vec<_>>(),
        ran,
        "exactly the steps that ran are explained:\n{}",
        out.stderr
    );
    let mut cmd = json.command();
    cmd.current_dir(ctx.path())
        .args(["build", "--progress", "json", "-t", "app:1"])
        .args(&args)
        .arg(".");
    let json_out = Out::from_command(cmd);
    assert_eq!(json_out.code, 0, "{}", json_out.stderr);
    assert_eq!(
        json_reasons(&json_out),
        reasons,
        "JSON and plain progress give the same reasons:\n{}\n{}",
        out.stderr,
        json_out.stderr
    );
    Reasons(reasons, out.stderr)
}

/// The reasons of one build, and its output for messages.
struct Reasons(BTreeMap<String, String>, String);

impl Reasons {
    #[track_caller]
    fn assert(&self, expected: &[(&str, &str)]) {
        let expected: BTreeMap<String, String> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(self.0, expected, "{}", self.1);
    }
}

const COPIES: &str = "FROM scratch\nCOPY dir /data\nCOPY run.sh /bin/\n";

fn copies() -> Ctx {
    let ctx = Ctx::new();
    ctx.kubefile(COPIES)
        .file("dir/a.txt", "a\n")
        .file("dir/b.txt", "b\n")
        .file("dir/sub/c.txt", "c\n")
        .file_mode("run.sh", "#!/bin/sh\n", 0o644);
    ctx
}

#[test]
fn the_first_build_explains_every_step_and_a_noop_build_nothing() {
    let seal = Seal::new();
    let ctx = copies();
    let first = seal.build_ok(ctx.path(), "app:1", &["--explain"]);
    assert_eq!(
        plain_reasons(&first),
        BTreeMap::from([
            (
                "[1/3] FROM scratch".into(),
                "first build of this step".into()
            ),
            (
                "[2/3] COPY dir /data".into(),
                "first build of this step".into()
            ),
            (
                "[3/3] COPY run.sh /bin/".into(),
                "first build of this step".into()
            ),
        ]),
        "{}",
        first.stderr
    );
    let noop = seal.build_ok(ctx.path(), "app:1", &["--explain"]);
    assert!(!noop.stderr.contains("WHY"), "{}", noop.stderr);
    assert_eq!(noop.summary().executed, 0);
    let mut cmd = seal.command();
    cmd.current_dir(ctx.path()).args([
        "build",
        "--explain",
        "--progress",
        "json",
        "-t",
        "app:1",
        ".",
    ]);
    let json = Out::from_command(cmd);
    assert_eq!(json.code, 0, "{}", json.stderr);
    assert!(json_reasons(&json).is_empty(), "{}", json.stderr);
    assert!(!json.stderr.contains("\"explain\""), "{}", json.stderr);
}

#[test]
fn a_modified_file_is_named() {
    explain_edit(
        &copies(),
        &[],
        |ctx| {
            ctx.file("dir/sub/c.txt", "c, edited\n");
        },
        &[],
    )
    .assert(&[(
        "[2/3] COPY dir /data",
        "sources changed: 1 modified (dir/sub/c.txt)",
    )]);
}

#[test]
fn added_files_are_named_first_and_counted() {
    explain_edit(
        &copies(),
        &[],
        |ctx| {
            for name in ["n1", "n2", "n3", "n4", "n5"] {
                ctx.file(&format!("dir/new/{name}"), name);
            }
        },
        &[],
    )
    .assert(&[(
        "[2/3] COPY dir /data",
        "sources changed: 6 added (dir/new, dir/new/n1, dir/new/n2 and 3 more)",
    )]);
}

#[test]
fn a_removed_file_is_named() {
    explain_edit(
        &copies(),
        &[],
        |ctx| {
            std::fs::remove_file(ctx.path().join("dir/b.txt")).unwrap();
        },
        &[],
    )
    .assert(&[(
        "[2/3] COPY dir /data",
        "sources changed: 1 removed (dir/b.txt)",
    )]);
}

#[test]
fn a_mode_change_is_named() {
    explain_edit(
        &copies(),
        &[],
        |ctx| {
            use std::os::unix::fs::PermissionsExt;
            let path = ctx.path().join("run.sh");
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
        },
        &[],
    )
    .assert(&[(
        "[3/3] COPY run.sh /bin/",
        "sources changed: 1 mode changed (run.sh)",
    )]);
}

#[test]
fn a_build_arg_names_the_arg_with_old_and_new_values() {
    let ctx = Ctx::new();
    ctx.kubefile("FROM scratch\nARG VERSION=1\nCOPY a.txt /opt/$VERSION/\nCOPY b.txt /b/\n")
        .file("a.txt", "a\n")
        .file("b.txt", "b\n");
    explain_edit(&ctx, &[], |_| {}, &["--build-arg", "VERSION=2"]).assert(&[(
        "[2/3] COPY a.txt /opt/$VERSION/",
        "ARG VERSION changed: 1 → 2",
    )]);
}

#[test]
fn an_env_change_names_the_variable_a_run_sees() {
    let ctx = Ctx::new();
    ctx.kubefile("FROM scratch\nENV MODE=fast\nCOPY a.txt /\nRUN echo \"$MODE\" > mode\n")
        .file("a.txt", "a\n");
    explain_edit(
        &ctx,
        &[],
        |ctx| {
            ctx.kubefile("FROM scratch\nENV MODE=slow\nCOPY a.txt /\nRUN echo \"$MODE\" > mode\n");
        },
        &[],
    )
    .assert(&[(
        "[3/3] RUN echo \"$MODE\" > mode",
        "ENV MODE changed: fast → slow",
    )]);
}

#[test]
fn a_changed_line_quotes_the_old_one() {
    let ctx = copies();
    explain_edit(
        &ctx,
        &[],
        |ctx| {
            ctx.kubefile("FROM scratch\nCOPY dir /srv\nCOPY run.sh /bin/\n");
        },
        &[],
    )
    .assert(&[(
        "[2/3] COPY dir /srv",
        "the Kubefile line changed (was: COPY dir /data)",
    )]);
}

#[test]
fn a_run_after_a_changed_step_names_that_step() {
    let ctx = Ctx::new();
    ctx.kubefile("FROM scratch\nCOPY a.txt /\nRUN cat a.txt > b.txt\n")
        .file("a.txt", "a\n");
    explain_edit(
        &ctx,
        &[],
        |ctx| {
            ctx.file("a.txt", "a, edited\n");
        },
        &[],
    )
    .assert(&[
        ("[2/3] COPY a.txt /", "sources changed: 1 modified (a.txt)"),
        (
            "[3/3] RUN cat a.txt > b.txt",
            "an earlier step changed: [2/3] COPY a.txt /",
        ),
    ]);
}

#[test]
fn a_new_base_image_is_named_with_both_digests() {
    let (plain, json) = (Seal::new(), Seal::new());
    let base = Ctx::new();
    base.kubefile("FROM scratch\nCOPY base.txt /\n")
        .file("base.txt", "one\n");
    let old = plain.digest(base.path(), "base:1", &[]);
    json.digest(base.path(), "base:1", &[]);
    let app = Ctx::new();
    app.kubefile("FROM base:1\nCOPY app.txt /app/\nRUN cat base.txt > seen.txt\n")
        .file("app.txt", "app\n");
    plain.build_ok(app.path(), "app:1", &[]);
    json.build_ok(app.path(), "app:1", &[]);

    base.file("base.txt", "two\n");
    let new = plain.digest(base.path(), "base:1", &[]);
    assert_eq!(json.digest(base.path(), "base:1", &[]), new);
    let short = |d: &str| d[..19].to_string();
    explain_both(&plain, &json, &app, &[]).assert(&[
        (
            "[1/3] FROM base:1",
            &format!(
                "base image changed: docker.io/sealerio/base:1 {} → {}",
                short(&old),
                short(&new)
            ),
        ),
        (
            "[3/3] RUN cat base.txt > seen.txt",
            "its base changed: [1/3] FROM base:1",
        ),
    ]);
}

#[test]
fn no_cache_filter_and_no_cache_are_named() {
    let ctx = copies();
    explain_edit(&ctx, &[], |_| {}, &["--no-cache-filter", "2"])
        .assert(&[("[2/3] COPY dir /data", "--no-cache-filter")]);
    explain_edit(&ctx, &[], |_| {}, &["--no-cache"]).assert(&[
        ("[1/3] FROM scratch", "--no-cache"),
        ("[2/3] COPY dir /data", "--no-cache"),
        ("[3/3] COPY run.sh /bin/", "--no-cache"),
    ]);
}

#[test]
fn pruned_results_are_named_and_pruning_a_removed_name_forgets_its_steps() {
    let seal = Seal::new();
    let ctx = copies();
    seal.build_ok(ctx.path(), "app:1", &[]);
    let prune = seal.run_in(ctx.path(), &["prune", "--all"]);
    assert_eq!(prune.code, 0, "{}", prune.stderr);
    let out = seal.build_ok(ctx.path(), "app:1", &["--explain"]);
    let gone = "its cached result is gone (`seal prune`, or a damaged blob)";
    assert_eq!(
        plain_reasons(&out),
        BTreeMap::from([
            ("[1/3] FROM scratch".into(), gone.into()),
            ("[2/3] COPY dir /data".into(), gone.into()),
            ("[3/3] COPY run.sh /bin/".into(), gone.into()),
        ]),
        "{}",
        out.stderr
    );

    // The name goes, then prune: what its builds read goes too.
    let rmi = seal.run_in(ctx.path(), &["rmi", "app:1"]);
    assert_eq!(rmi.code, 0, "{}", rmi.stderr);
    let prune = seal.run_in(ctx.path(), &["prune", "--all"]);
    assert_eq!(prune.code, 0, "{}", prune.stderr);
    let out = seal.build_ok(ctx.path(), "app:1", &["--explain"]);
    let reasons = plain_reasons(&out);
    assert_eq!(reasons.len(), 3, "{}", out.stderr);
    assert!(
        reasons.values().all(|r| r == "first build of this step"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_copy_from_a_stage_names_the_stage_step_that_changed() {
    let ctx = Ctx::new();
    ctx.kubefile(
        "FROM scratch AS builder\nCOPY src /src\nRUN cat src/a > out\n\
         FROM scratch\nCOPY --from=builder out /app/\nCOPY keep.txt /\n",
    )
    .file("src/a", "a\n")
    .file("keep.txt", "keep\n");
    explain_edit(
        &ctx,
        &[],
        |ctx| {
            ctx.file("src/a", "a, edited\n");
        },
        &[],
    )
    .assert(&[
        (
            "[builder 2/3] COPY src /src",
            "sources changed: 1 modified (src/a)",
        ),
        (
            "[builder 3/3] RUN cat src/a > out",
            "an earlier step changed: [builder 2/3] COPY src /src",
        ),
        (
            // The stage's whole rootfs is its input: both of its changed layers.
            "[stage-1 2/3] COPY --from=builder out /app/",
            "earlier steps changed: [builder 2/3] COPY src /src, [builder 3/3] RUN cat src/a > out",
        ),
    ]);
}
