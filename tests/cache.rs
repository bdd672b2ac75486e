//! The build cache, end to end: what a rebuild re-runs, what it reads, and what it must notice.
//! KUBEFILE.md "Cache rules", "Context and ignore files", "Reproducibility".

mod common;

use common::{Ctx, Out, Seal, Step, OLD};

const TWO_COPIES: &str = "FROM scratch\nCOPY dir1 a\nCOPY dir2 b\n";

/// A context with two directories, each copied by its own step.
fn two_dirs() -> Ctx {
    let ctx = Ctx::new();
    ctx.kubefile(TWO_COPIES)
        .file("dir1/one.txt", "one\n")
        .file("dir1/sub/deep.txt", "deep\n")
        .file("dir2/two.txt", "two\n")
        .file("unrelated.txt", "never copied\n");
    ctx
}

#[track_caller]
fn assert_all_cached(out: &Out) {
    let steps = out.steps();
    assert!(!steps.is_empty(), "no steps in:\n{}", out.stderr);
    for (name, status) in &steps {
        assert_eq!(
            *status,
            Step::Cached,
            "step `{name}` should be CACHED:\n{}",
            out.stderr
        );
    }
    assert!(
        !out.stderr.contains(" DONE "),
        "no step may run:\n{}",
        out.stderr
    );
    let summary = out.summary();
    assert_eq!(summary.executed, 0, "{}", out.stderr);
    assert_eq!(summary.cached, steps.len(), "{}", out.stderr);
}

#[track_caller]
fn assert_none_cached(out: &Out) {
    let steps = out.steps();
    assert!(!steps.is_empty(), "no steps in:\n{}", out.stderr);
    for (name, status) in &steps {
        assert_eq!(
            *status,
            Step::Done,
            "step `{name}` should run:\n{}",
            out.stderr
        );
    }
    assert!(!out.stderr.contains("CACHED"), "{}", out.stderr);
    assert_eq!(out.summary().cached, 0, "{}", out.stderr);
}

#[test]
fn same_build_twice_is_fully_cached() {
    let seal = Seal::new();
    let ctx = two_dirs();
    let first = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_none_cached(&first);
    assert_eq!(first.steps().len(), 3, "{}", first.stderr);

    let second = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_all_cached(&second);
    assert_eq!(second.summary().cached, 3);
    assert_eq!(first.digest(), second.digest());
}

#[test]
fn json_progress_of_a_noop_rebuild_has_only_cached_events() {
    let seal = Seal::new();
    let ctx = two_dirs();
    let digest = seal.digest(ctx.path(), "demo:v1", &[]);
    let out = seal.run_in(
        ctx.path(),
        &["build", "--progress", "json", "-t", "demo:v1", "."],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.digest(), digest);
    let mut vertices = std::collections::BTreeSet::new();
    for line in out.stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        let event = v["event"]
            .as_str()
            .unwrap_or_else(|| panic!("no event in {line}"));
        if event == "summary" {
            continue;
        }
        assert_eq!(event, "cached", "{line}");
        assert!(v["time"].is_number() && v["name"].is_string(), "{line}");
        vertices.insert(
            v["vertex"]
                .as_u64()
                .unwrap_or_else(|| panic!("no vertex in {line}")),
        );
    }
    assert_eq!(vertices.len(), 3, "{}", out.stderr);
}

#[test]
fn changing_a_file_reruns_only_the_copy_that_reads_it() {
    let seal = Seal::new();
    let ctx = two_dirs();
    let before = seal.digest(ctx.path(), "demo:v1", &[]);

    ctx.file("dir2/two.txt", "two, edited\n");
    let out = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_eq!(out.step("COPY dir1 a"), Step::Cached, "{}", out.stderr);
    assert_eq!(out.step("COPY dir2 b"), Step::Done, "{}", out.stderr);
    assert_eq!(out.step("FROM scratch"), Step::Cached, "{}", out.stderr);
    assert_eq!(out.summary().executed, 1, "{}", out.stderr);
    assert_ne!(out.digest(), before);
}

#[test]
fn a_copy_survives_a_change_to_an_earlier_copy() {
    let seal = Seal::new();
    let ctx = two_dirs();
    let before = seal.digest(ctx.path(), "demo:v1", &[]);

    ctx.file("dir1/sub/new.txt", "new\n");
    let out = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_eq!(out.step("COPY dir1 a"), Step::Done, "{}", out.stderr);
    assert_eq!(out.step("COPY dir2 b"), Step::Cached, "{}", out.stderr);
    assert_ne!(out.digest(), before);

    // And back: the old content is an old cache entry again.
    std::fs::remove_file(ctx.path().join("dir1/sub/new.txt")).unwrap();
    let back = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_all_cached(&back);
    assert_eq!(back.digest(), before);
}

#[test]
fn changing_a_file_nothing_copies_reruns_nothing() {
    let seal = Seal::new();
    let ctx = two_dirs();
    let before = seal.digest(ctx.path(), "demo:v1", &[]);
    ctx.file("unrelated.txt", "changed, still never copied\n")
        .file("new-unrelated.txt", "x");
    let out = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_all_cached(&out);
    assert_eq!(out.digest(), before);
}

#[test]
fn touching_a_file_reruns_nothing() {
    let seal = Seal::new();
    let ctx = two_dirs();
    ctx.touch_all(OLD);
    let before = seal.digest(ctx.path(), "demo:v1", &[]);

    ctx.touch("dir1/one.txt", OLD + 86_400)
        .touch("dir2/two.txt", OLD + 86_400)
        .touch("dir1", OLD + 5);
    let out = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_all_cached(&out);
    assert_eq!(out.digest(), before);
}

#[test]
fn same_size_rewrite_with_the_old_mtime_is_detected() {
    let seal = Seal::new();
    let ctx = two_dirs();
    ctx.age();
    let before = seal.digest(ctx.path(), "demo:v1", &[]);
    // A second build, so the stat cache surely holds these files as clean.
    assert_all_cached(&seal.build_ok(ctx.path(), "demo:v1", &[]));

    // Same size, same inode, same mtime: only ctime and the bytes differ.
    let path = ctx.path().join("dir2/two.txt");
    let old_len = std::fs::metadata(&path).unwrap().len();
    std::fs::write(&path, "TWO\n").unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), old_len);
    ctx.touch("dir2/two.txt", OLD);

    let out = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_eq!(
        out.step("COPY dir2 b"),
        Step::Done,
        "the rewrite must be detected:\n{}",
        out.stderr
    );
    assert_eq!(out.step("COPY dir1 a"), Step::Cached, "{}", out.stderr);
    assert_ne!(out.digest(), before, "a stale layer was served");
}

#[test]
fn same_size_rewrite_right_after_a_build_is_detected() {
    // No aging: the file is inside the racy window of the build that just read it.
    let seal = Seal::new();
    let ctx = two_dirs();
    ctx.touch_all(OLD);
    let before = seal.digest(ctx.path(), "demo:v1", &[]);
    std::fs::write(ctx.path().join("dir1/one.txt"), "ONE\n").unwrap();
    ctx.touch("dir1/one.txt", OLD);
    let out = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_eq!(out.step("COPY dir1 a"), Step::Done, "{}", out.stderr);
    assert_ne!(out.digest(), before);
}

#[test]
fn renaming_a_file_in_an_aged_dir_is_detected() {
    let seal = Seal::new();
    let ctx = two_dirs();
    ctx.age();
    let before = seal.digest(ctx.path(), "demo:v1", &[]);
    assert_all_cached(&seal.build_ok(ctx.path(), "demo:v1", &[]));

    std::fs::rename(
        ctx.path().join("dir1/sub/deep.txt"),
        ctx.path().join("dir1/sub/DEEP.txt"),
    )
    .unwrap();
    ctx.touch("dir1/sub", OLD).touch("dir1/sub/DEEP.txt", OLD);
    let out = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_eq!(
        out.step("COPY dir1 a"),
        Step::Done,
        "a rename must be detected:\n{}",
        out.stderr
    );
    assert_eq!(out.step("COPY dir2 b"), Step::Cached, "{}", out.stderr);
    assert_ne!(out.digest(), before);
}

#[test]
fn chmod_alone_is_detected() {
    use std::os::unix::fs::PermissionsExt;
    let seal = Seal::new();
    let ctx = two_dirs();
    ctx.age();
    let before = seal.digest(ctx.path(), "demo:v1", &[]);
    assert_all_cached(&seal.build_ok(ctx.path(), "demo:v1", &[]));

    let path = ctx.path().join("dir1/one.txt");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_eq!(
        out.step("COPY dir1 a"),
        Step::Done,
        "a mode change must be detected:\n{}",
        out.stderr
    );
    assert_eq!(out.step("COPY dir2 b"), Step::Cached, "{}", out.stderr);
    assert_ne!(out.digest(), before);
}

#[test]
fn changing_a_symlink_target_is_detected() {
    let seal = Seal::new();
    let ctx = two_dirs();
    ctx.symlink("dir1/link", "one.txt");
    let before = seal.digest(ctx.path(), "demo:v1", &[]);

    std::fs::remove_file(ctx.path().join("dir1/link")).unwrap();
    ctx.symlink("dir1/link", "sub/deep.txt");
    let out = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_eq!(out.step("COPY dir1 a"), Step::Done, "{}", out.stderr);
    assert_eq!(out.step("COPY dir2 b"), Step::Cached, "{}", out.stderr);
    assert_ne!(out.digest(), before);
}

#[test]
fn a_copy_of_the_context_elsewhere_with_new_mtimes_gives_the_same_digest() {
    let ctx = two_dirs();
    ctx.touch_all(OLD);
    let here = Seal::new().digest(ctx.path(), "demo:v1", &[]);

    let elsewhere = tempfile::TempDir::new().unwrap();
    let copy = elsewhere.path().join("ctx");
    common::tool(
        "cp",
        &["-r", ctx.path().to_str().unwrap(), copy.to_str().unwrap()],
        elsewhere.path(),
    );
    common::set_mtime_tree(&copy, 1_750_000_000);
    let fresh = Seal::new();
    let out = fresh.build_ok(&copy, "demo:v1", &[]);
    assert_none_cached(&out);
    assert_eq!(
        out.digest(),
        here,
        "same content, other path and mtimes: same image"
    );
}

#[test]
fn no_cache_reruns_every_step_and_gives_the_same_digest() {
    let seal = Seal::new();
    let ctx = two_dirs();
    let first = seal.digest(ctx.path(), "demo:v1", &[]);
    let out = seal.build_ok(ctx.path(), "demo:v1", &["--no-cache"]);
    assert_none_cached(&out);
    assert_eq!(out.summary().executed, 3, "{}", out.stderr);
    assert_eq!(out.digest(), first);
    // The results are still stored: a normal build after it is a no-op.
    assert_all_cached(&seal.build_ok(ctx.path(), "demo:v1", &[]));
}

#[test]
fn a_noop_rebuild_of_an_aged_context_reads_no_file() {
    let seal = Seal::new();
    let ctx = two_dirs();
    ctx.age();
    let first = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_eq!(
        first.summary().files_read,
        3,
        "dir1 holds 2 files, dir2 one:\n{}",
        first.stderr
    );
    for _ in 0..2 {
        let again = seal.build_ok(ctx.path(), "demo:v1", &[]);
        assert_all_cached(&again);
        assert_eq!(
            again.summary().files_read,
            0,
            "nothing changed, nothing to read:\n{}",
            again.stderr
        );
        assert_eq!(again.digest(), first.digest());
    }
}

#[test]
fn ignoring_a_file_of_dir1_reruns_only_the_copy_of_dir1() {
    let seal = Seal::new();
    let ctx = two_dirs();
    let before = seal.digest(ctx.path(), "demo:v1", &[]);

    ctx.file(".dockerignore", "# drop one file\ndir1/sub/deep.txt\n");
    let out = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_eq!(out.step("COPY dir1 a"), Step::Done, "{}", out.stderr);
    assert_eq!(out.step("COPY dir2 b"), Step::Cached, "{}", out.stderr);
    let ignored = out.digest();
    assert_ne!(ignored, before);

    // Content identity: the same image as a context that never had the file.
    let other = two_dirs();
    std::fs::remove_file(other.path().join("dir1/sub/deep.txt")).unwrap();
    assert_eq!(Seal::new().digest(other.path(), "demo:v1", &[]), ignored);

    // A `!` exception brings it back, and with it the first image.
    ctx.file(".dockerignore", "dir1/sub/deep.txt\n!dir1/sub/deep.txt\n");
    let back = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_all_cached(&back);
    assert_eq!(back.digest(), before);
}

#[test]
fn ignoring_an_unreachable_path_reruns_nothing() {
    let seal = Seal::new();
    let ctx = two_dirs();
    let before = seal.digest(ctx.path(), "demo:v1", &[]);
    ctx.file(".sealignore", "unrelated.txt\n*.log\n");
    let out = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_all_cached(&out);
    assert_eq!(out.digest(), before);
}

#[test]
fn a_build_arg_reaching_a_copy_changes_it_and_an_unused_one_does_not() {
    let seal = Seal::new();
    let ctx = Ctx::new();
    ctx.kubefile("FROM scratch\nARG D=x\nARG UNUSED=1\nCOPY a $D\nCOPY b fixed\n")
        .file("a", "a\n")
        .file("b", "b\n");

    let default = seal.digest(ctx.path(), "demo:v1", &[]);
    assert_eq!(
        seal.digest(ctx.path(), "demo:v1", &["--build-arg", "D=x"]),
        default,
        "the default value, given explicitly"
    );

    let other = seal.build_ok(ctx.path(), "demo:v1", &["--build-arg", "D=y"]);
    assert_ne!(other.digest(), default);
    assert_eq!(other.step("COPY a $D"), Step::Done, "{}", other.stderr);
    assert_eq!(other.step("COPY b fixed"), Step::Cached, "{}", other.stderr);

    let unused = seal.build_ok(ctx.path(), "demo:v1", &["--build-arg", "UNUSED=2"]);
    assert_eq!(
        unused.digest(),
        default,
        "a value that reaches no step changes nothing"
    );
    assert_all_cached(&unused);
}

/// A build whose only change is a touched file records the new stat in the file-hash log
/// instead of opening the database for writing; later builds trust it, and the next build that
/// writes folds the log into the database.
#[test]
fn a_touched_file_is_recorded_in_the_log_and_folded_later() {
    let ctx = Ctx::new();
    ctx.file("dir1/a.txt", "a")
        .file("dir1/b.txt", "b")
        .kubefile("FROM scratch\nCOPY dir1 d\n")
        .age();
    let seal = Seal::new();
    let first = seal.build_ok(ctx.path(), "t:1", &[]);
    let log = seal.root().join("filehash.log");
    assert!(!log.exists());

    ctx.touch("dir1/a.txt", common::OLD + 10);
    // Out of the racy window of its new ctime.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let touched = seal.build_ok(ctx.path(), "t:1", &[]);
    assert_eq!(touched.summary().files_read, 1, "{}", touched.stderr);
    assert_eq!(touched.digest(), first.digest());
    assert!(log.exists(), "the new stat went to the log");
    let again = seal.build_ok(ctx.path(), "t:1", &[]);
    assert_eq!(again.summary().files_read, 0, "the logged entry is trusted");

    ctx.file("dir1/b.txt", "b2")
        .touch("dir1/b.txt", common::OLD + 20);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let changed = seal.build_ok(ctx.path(), "t:1", &[]);
    assert_eq!(changed.summary().executed, 1, "{}", changed.stderr);
    assert!(
        !log.exists(),
        "a build that writes folds the log into the database"
    );
    let after = seal.build_ok(ctx.path(), "t:1", &[]);
    assert_eq!(after.summary().files_read, 0, "{}", after.stderr);
    assert_eq!(after.summary().executed, 0, "{}", after.stderr);
}
