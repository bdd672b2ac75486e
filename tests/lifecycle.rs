//! Store lifecycle, end to end: `seal rmi`, `seal prune` (mark and sweep, `--all`,
//! `--keep-duration`, `--keep-storage`, `--dry-run`), `seal du` and `seal fsck [--repair]`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Ctx, Out, Seal, Step};
use serde_json::Value;

const TWO_COPIES: &str = "FROM scratch\nCOPY common.txt c\nCOPY own.txt o\n";

/// A context whose first COPY is shared with every other `two_copies` context and whose second
/// holds `own`.
fn two_copies(own: &str) -> Ctx {
    let ctx = Ctx::new();
    ctx.kubefile(TWO_COPIES)
        .file("common.txt", "shared by every image\n")
        .file("own.txt", own);
    ctx
}

/// A context with one COPY of `size` pseudo-random (incompressible) bytes seeded by `seed`.
fn one_blob(seed: u64, size: usize) -> Ctx {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    let bytes: Vec<u8> = (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let ctx = Ctx::new();
    ctx.kubefile("FROM scratch\nCOPY data.bin data.bin\n")
        .file("data.bin", bytes);
    ctx
}

fn run(seal: &Seal, args: &[&str]) -> Out {
    seal.run_in(&std::env::temp_dir(), args)
}

#[track_caller]
fn ok(seal: &Seal, args: &[&str]) -> Out {
    let out = run(seal, args);
    assert_eq!(
        out.code, 0,
        "seal {args:?} failed:\n{}{}",
        out.stdout, out.stderr
    );
    out
}

#[track_caller]
fn json(seal: &Seal, args: &[&str]) -> Value {
    let out = ok(seal, args);
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("seal {args:?} printed no JSON ({e}):\n{}", out.stdout))
}

fn du(seal: &Seal) -> Value {
    json(seal, &["du", "--format", "json"])
}

fn prune(seal: &Seal, extra: &[&str]) -> Value {
    let mut args = vec!["prune", "--format", "json"];
    args.extend_from_slice(extra);
    json(seal, &args)
}

fn n(v: &Value, kind: &str, field: &str) -> u64 {
    v[kind][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {kind}.{field} in {v}"))
}

fn blob_path(seal: &Seal, digest: &str) -> PathBuf {
    seal.root()
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").expect("a sha256 digest"))
}

fn blobs_on_disk(seal: &Seal) -> BTreeSet<String> {
    std::fs::read_dir(seal.root().join("blobs/sha256"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every blob an image names: manifest, config, layers.
fn image_blobs(seal: &Seal, name: &str) -> Vec<String> {
    let v = seal.inspect(name);
    let mut out = vec![
        v["digest"].as_str().unwrap().to_string(),
        v["configDigest"].as_str().unwrap().to_string(),
    ];
    out.extend(
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_string()),
    );
    out
}

fn layers(seal: &Seal, name: &str) -> Vec<String> {
    image_blobs(seal, name).split_off(2)
}

#[track_caller]
fn assert_all_cached(out: &Out) {
    let s = out.summary();
    assert_eq!(s.executed, 0, "nothing may run:\n{}", out.stderr);
}

#[track_caller]
fn assert_copies_ran(out: &Out) {
    for (name, step) in out.steps() {
        if name.contains("COPY") {
            assert_eq!(step, Step::Done, "`{name}` should run:\n{}", out.stderr);
        }
    }
}

/// `seal fsck` output and exit code.
fn fsck(seal: &Seal, extra: &[&str]) -> Out {
    let mut args = vec!["fsck"];
    args.extend_from_slice(extra);
    run(seal, &args)
}

#[track_caller]
fn assert_fsck_clean(seal: &Seal) {
    let out = fsck(seal, &[]);
    assert_eq!(out.code, 0, "fsck should be clean:\n{}", out.stdout);
    assert!(!out.stdout.contains("problem:"), "{}", out.stdout);
    assert!(out.stdout.contains("no problems found"), "{}", out.stdout);
}

#[test]
fn rmi_removes_names_but_not_blobs() {
    let seal = Seal::new();
    let ctx = two_copies("a\n");
    seal.digest(ctx.path(), "demo:v1", &[]);
    seal.digest(ctx.path(), "demo:v2", &[]);
    let before = blobs_on_disk(&seal);

    let out = ok(&seal, &["rmi", "demo:v1"]);
    assert_eq!(out.stdout.trim(), "untagged: docker.io/sealerio/demo:v1");
    let names = json(&seal, &["images", "--format", "json"]);
    let names: Vec<&str> = names
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["docker.io/sealerio/demo:v2"]);
    assert_eq!(blobs_on_disk(&seal), before, "rmi deletes no blob");

    // Unknown names: exit 1 naming them (the known ones are still removed), unless -f.
    let out = run(&seal, &["rmi", "demo:v1", "demo:v2"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("no image named docker.io/sealerio/demo:v1"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("untagged: docker.io/sealerio/demo:v2"));
    assert_eq!(
        json(&seal, &["images", "--format", "json"]),
        Value::Array(vec![])
    );
    let out = ok(&seal, &["rmi", "-f", "demo:v1", "other:1"]);
    assert_eq!(out.stdout, "");

    // Bad names are usage errors; no store is no image.
    assert_eq!(run(&seal, &["rmi", "UPPER"]).code, 2);
    assert_eq!(run(&seal, &["rmi"]).code, 2);
    let empty = Seal::new();
    assert_eq!(run(&empty, &["rmi", "demo:v1"]).code, 1);
    ok(&empty, &["rmi", "-f", "demo:v1"]);
    assert!(!empty.root().exists(), "rmi must not create a store");
}

#[test]
fn prune_keeps_what_images_reach_and_frees_the_rest() {
    let seal = Seal::new();
    let a = two_copies("only in a\n");
    let b = two_copies("only in b\n");
    seal.digest(a.path(), "a:1", &[]);
    let b_digest = seal.digest(b.path(), "b:1", &[]);
    let a_blobs = image_blobs(&seal, "a:1");
    let b_blobs = image_blobs(&seal, "b:1");
    let a_own_layer = layers(&seal, "a:1")[1].clone();
    assert_eq!(
        layers(&seal, "a:1")[0],
        layers(&seal, "b:1")[0],
        "the shared COPY"
    );

    // Nothing is garbage while both names exist.
    let nothing = prune(&seal, &[]);
    assert_eq!(nothing["total_bytes"], 0, "{nothing}");
    assert_eq!(n(&nothing, "blobs", "count"), 0);

    ok(&seal, &["rmi", "a:1"]);
    let before = du(&seal);
    assert_eq!(
        n(&before, "unreferenced_blobs", "count"),
        2,
        "a's manifest and config"
    );

    // Default prune: a's manifest and config go; its layers stay for the cache.
    let pruned = prune(&seal, &[]);
    assert_eq!(pruned["dry_run"], false);
    assert_eq!(pruned["cache_records"], 0);
    assert_eq!(n(&pruned, "blobs", "count"), 2, "{pruned}");
    assert!(!blob_path(&seal, &a_blobs[0]).exists());
    assert!(!blob_path(&seal, &a_blobs[1]).exists());
    assert!(blob_path(&seal, &a_own_layer).exists());
    for blob in &b_blobs {
        assert!(blob_path(&seal, blob).exists(), "b's {blob} must stay");
    }
    let after = du(&seal);
    assert_eq!(
        n(&before, "unreferenced_blobs", "bytes") - n(&after, "unreferenced_blobs", "bytes"),
        n(&pruned, "blobs", "bytes"),
        "du changes by what prune freed: {before} -> {after}"
    );
    assert_eq!(n(&after, "unreferenced_blobs", "count"), 0);
    assert_eq!(after["image_blobs"], before["image_blobs"]);
    assert_eq!(after["cache_blobs"], before["cache_blobs"]);
    assert_eq!(
        n(&after, "cache_blobs", "count"),
        1,
        "a's own layer: {after}"
    );

    // b still saves and rebuilds from the cache.
    let tmp = tempfile::tempdir().unwrap();
    seal.save("b:1", &tmp.path().join("b.tar"));
    let again = seal.build_ok(b.path(), "b:1", &[]);
    assert_all_cached(&again);
    assert_eq!(again.digest(), b_digest);

    // --all: every cache record goes, and with them a's own layer; b keeps all it reaches.
    let before = du(&seal);
    let all = prune(&seal, &["--all"]);
    assert!(all["cache_records"].as_u64().unwrap() >= 3, "{all}");
    assert_eq!(n(&all, "blobs", "count"), 1, "a's own layer: {all}");
    assert!(!blob_path(&seal, &a_own_layer).exists());
    for blob in &b_blobs {
        assert!(blob_path(&seal, blob).exists(), "b's {blob} must stay");
    }
    let after = du(&seal);
    assert_eq!(after["cache_records"], 0);
    assert_eq!(n(&after, "cache_blobs", "count"), 0, "{after}");
    assert_eq!(n(&after, "unreferenced_blobs", "count"), 0, "{after}");
    assert_eq!(after["image_blobs"], before["image_blobs"]);
    assert_eq!(
        n(&before, "cache_blobs", "bytes"),
        n(&all, "blobs", "bytes"),
        "du changes by what prune freed"
    );
    seal.save("b:1", &tmp.path().join("b2.tar"));
    assert_fsck_clean(&seal);

    // Without records a rebuild runs again, to the same image.
    let rebuilt = seal.build_ok(b.path(), "b:1", &[]);
    assert_copies_ran(&rebuilt);
    assert_eq!(rebuilt.digest(), b_digest);
}

#[test]
fn dry_run_deletes_nothing_and_reports_what_prune_frees() {
    let seal = Seal::new();
    let ctx = two_copies("x\n");
    seal.digest(ctx.path(), "demo:v1", &[]);
    ok(&seal, &["rmi", "demo:v1"]);
    std::fs::create_dir_all(seal.root().join("snapshots/.unpack-stale/sub")).unwrap();
    std::fs::write(seal.root().join("snapshots/.unpack-stale/sub/f"), "12345").unwrap();
    let orphan = seal.root().join("snapshots").join("ab".repeat(32));
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("file"), "orphan").unwrap();
    let blobs = blobs_on_disk(&seal);
    let before = du(&seal);

    let dry = prune(&seal, &["--all", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(n(&dry, "blobs", "count"), blobs.len() as u64, "{dry}");
    assert_eq!(n(&dry, "snapshots", "count"), 1, "{dry}");
    assert_eq!(n(&dry, "snapshots", "bytes"), 6, "{dry}");
    assert_eq!(n(&dry, "temp", "count"), 1, "{dry}");
    assert_eq!(n(&dry, "temp", "bytes"), 5, "{dry}");
    let text = ok(&seal, &["prune", "--all", "--dry-run"]).stdout;
    assert!(text.contains("would delete"), "{text}");
    assert!(text.contains("nothing was deleted"), "{text}");
    assert_eq!(blobs_on_disk(&seal), blobs);
    assert!(orphan.is_dir());
    let unchanged = du(&seal);
    for kind in [
        "image_blobs",
        "cache_blobs",
        "unreferenced_blobs",
        "snapshots",
        "temp",
    ] {
        assert_eq!(unchanged[kind], before[kind], "{kind}");
    }
    assert_eq!(unchanged["cache_records"], before["cache_records"]);

    let real = prune(&seal, &["--all"]);
    for field in ["cache_records", "blobs", "snapshots", "temp", "total_bytes"] {
        assert_eq!(real[field], dry[field], "{field}");
    }
    assert!(blobs_on_disk(&seal).is_empty());
    assert!(!orphan.exists());
    assert!(!seal.root().join("snapshots/.unpack-stale").exists());
    let text = ok(&seal, &["prune"]).stdout;
    assert!(text.contains("freed 0 B in total"), "{text}");
}

#[test]
fn keep_duration_drops_records_not_used_recently() {
    let seal = Seal::new();
    let old = two_copies("old\n");
    let new = two_copies("new\n");
    let old_digest = seal.digest(old.path(), "old:1", &[]);
    std::thread::sleep(Duration::from_millis(3100));
    seal.digest(new.path(), "new:1", &[]);

    let pruned = prune(&seal, &["--keep-duration", "2s"]);
    // old's own COPY, its merge and the merge with its (empty) registry layer; the scratch
    // source, the shared COPY and the empty registry layer were hit by `new`.
    assert_eq!(pruned["cache_records"], 3, "{pruned}");
    assert_eq!(
        n(&pruned, "blobs", "count"),
        0,
        "images keep their blobs: {pruned}"
    );

    assert_all_cached(&seal.build_ok(new.path(), "new:1", &[]));
    let again = seal.build_ok(old.path(), "old:1", &[]);
    assert_eq!(again.step("COPY own.txt o"), Step::Done, "{}", again.stderr);
    assert_eq!(
        again.step("COPY common.txt c"),
        Step::Cached,
        "{}",
        again.stderr
    );
    assert_eq!(again.digest(), old_digest);
    let kept = prune(&seal, &["--keep-duration", "1h"]);
    assert_eq!(kept["cache_records"], 0, "{kept}");
}

#[test]
fn keep_storage_drops_least_recently_used_records_first() {
    let seal = Seal::new();
    let a = one_blob(1, 40_000);
    let b = one_blob(2, 40_000);
    seal.digest(a.path(), "a:1", &[]);
    let a_layer = layers(&seal, "a:1")[0].clone();
    std::thread::sleep(Duration::from_millis(1100));
    seal.digest(b.path(), "b:1", &[]);
    let b_layer = layers(&seal, "b:1")[0].clone();
    std::thread::sleep(Duration::from_millis(1100));
    // A cache hit counts as a use: a is now the more recently used.
    assert_all_cached(&seal.build_ok(a.path(), "a:1", &[]));
    ok(&seal, &["rmi", "a:1", "b:1"]);
    prune(&seal, &[]);
    let usage = du(&seal);
    let cached = n(&usage, "cache_blobs", "bytes");
    assert_eq!(n(&usage, "cache_blobs", "count"), 2, "{usage}");
    assert_eq!(n(&usage, "image_blobs", "count"), 0, "{usage}");

    // Room for one layer: b's records (older) go, a's stay.
    let limit = (cached - 1).to_string();
    let pruned = prune(&seal, &["--keep-storage", &limit]);
    assert_eq!(
        pruned["cache_records"], 3,
        "b's COPY, its merge and the merge with its (empty) registry layer: {pruned}"
    );
    assert_eq!(n(&pruned, "blobs", "count"), 1, "{pruned}");
    assert!(blob_path(&seal, &a_layer).exists());
    assert!(!blob_path(&seal, &b_layer).exists());
    assert!(n(&du(&seal), "cache_blobs", "bytes") < cached);
    assert_all_cached(&seal.build_ok(a.path(), "a:1", &[]));

    // Already within the limit: nothing to drop. What images reach is never deleted.
    let within = prune(&seal, &["--keep-storage", "10GiB"]);
    assert_eq!(within["cache_records"], 0, "{within}");
    let zero = prune(&seal, &["--keep-storage", "0"]);
    assert!(zero["cache_records"].as_u64().unwrap() >= 2, "{zero}");
    assert_eq!(
        n(&zero, "blobs", "count"),
        0,
        "a:1 reaches its layer: {zero}"
    );
    assert!(blob_path(&seal, &a_layer).exists());
    seal.save("a:1", &tempfile::tempdir().unwrap().path().join("a.tar"));

    // Sizes are checked.
    assert_eq!(run(&seal, &["prune", "--keep-storage", "10G"]).code, 2);
    assert_eq!(run(&seal, &["prune", "--keep-duration", "24"]).code, 2);
}

#[test]
fn prune_deletes_snapshots_no_reachable_layer_needs() {
    // Snapshot directories and their objects (tests/snapshot_images.rs prunes images).
    let seal = Seal::new().with_env("SEAL_SNAPSHOT_FORMAT", "directory");
    let base = Ctx::new();
    let bin = base.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .expect("busybox-static is installed (scripts/install-system-packages.sh)");
    std::os::unix::fs::symlink("busybox", bin.join("sh")).unwrap();
    base.kubefile("FROM scratch\nCOPY rootfs/. .\n");
    seal.build_ok(base.path(), "bb:1", &[]);
    let ctx = Ctx::new();
    ctx.kubefile("FROM bb:1\nRUN echo hi > x\n");
    seal.build_ok(ctx.path(), "r:1", &[]);
    let usage = du(&seal);
    assert_eq!(n(&usage, "snapshots", "count"), 1, "bb's layer: {usage}");
    // busybox is the snapshot's one file, a link to an object: its bytes are the object's
    // (issue 15), the snapshot's own are only what no object holds.
    assert_eq!(n(&usage, "objects", "count"), 1, "{usage}");
    assert!(n(&usage, "objects", "bytes") > 100_000, "{usage}");
    assert!(n(&usage, "snapshots", "bytes") < 1_000, "{usage}");

    // Still reachable from both images, then from the cache records alone.
    assert_eq!(n(&prune(&seal, &[]), "snapshots", "count"), 0);
    ok(&seal, &["rmi", "r:1", "bb:1"]);
    assert_eq!(n(&prune(&seal, &[]), "snapshots", "count"), 0);
    let before = du(&seal);
    let all = prune(&seal, &["--all"]);
    assert_eq!(n(&all, "snapshots", "count"), 1, "{all}");
    assert_eq!(all["snapshots"], before["snapshots"]);
    assert_eq!(
        all["objects"], before["objects"],
        "the snapshot's objects go with it"
    );
    let after = du(&seal);
    assert_eq!(n(&after, "snapshots", "count"), 0, "{after}");
    assert_eq!(n(&after, "objects", "count"), 0, "{after}");
    assert!(blobs_on_disk(&seal).is_empty());
    assert_fsck_clean(&seal);
}

#[test]
fn fsck_is_clean_on_a_fresh_store_and_lists_orphans() {
    let seal = Seal::new();
    let out = fsck(&seal, &[]);
    assert_eq!(out.code, 1, "no store is an error");
    let ctx = two_copies("x\n");
    seal.digest(ctx.path(), "demo:v1", &[]);
    assert_fsck_clean(&seal);
    ok(&seal, &["rmi", "demo:v1"]);
    // Unreferenced blobs are listed, but are no problem: prune frees them.
    let out = fsck(&seal, &[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("unreferenced: blob").count(),
        2,
        "{}",
        out.stdout
    );
}

#[test]
fn fsck_finds_a_corrupt_layer_and_repair_lets_a_rebuild_recreate_it() {
    let seal = Seal::new();
    let ctx = two_copies("x\n");
    let digest = seal.digest(ctx.path(), "demo:v1", &[]);
    let layer = layers(&seal, "demo:v1")[1].clone();
    let path = blob_path(&seal, &layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let out = fsck(&seal, &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains(&format!(
            "problem: blob {layer}: content does not match its digest"
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "problem: image docker.io/sealerio/demo:v1: layer {layer} is corrupt"
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("problem: cache record "),
        "{}",
        out.stdout
    );

    // Leftovers alone are not damage: once the image is repaired they do not fail fsck.
    assert!(!out.stdout.contains("problem: leftover"), "{}", out.stdout);

    let repaired = fsck(&seal, &["--repair"]);
    assert_eq!(repaired.code, 0, "{}", repaired.stdout);
    assert!(
        repaired
            .stdout
            .contains(&format!("repaired: deleted corrupt blob {layer}")),
        "{}",
        repaired.stdout
    );
    assert!(
        repaired
            .stdout
            .contains("repaired: removed image name docker.io/sealerio/demo:v1"),
        "{}",
        repaired.stdout
    );
    assert!(!path.exists());
    assert_fsck_clean(&seal);

    let rebuilt = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_eq!(
        rebuilt.step("COPY own.txt o"),
        Step::Done,
        "{}",
        rebuilt.stderr
    );
    assert_eq!(
        rebuilt.step("COPY common.txt c"),
        Step::Cached,
        "{}",
        rebuilt.stderr
    );
    assert_eq!(rebuilt.digest(), digest);
    assert!(path.exists());
    assert_fsck_clean(&seal);
}

#[test]
fn fsck_finds_a_missing_blob_and_leftovers() {
    let seal = Seal::new();
    let ctx = two_copies("x\n");
    let digest = seal.digest(ctx.path(), "demo:v1", &[]);
    let config = image_blobs(&seal, "demo:v1")[1].clone();
    std::fs::remove_file(blob_path(&seal, &config)).unwrap();
    // Prune will not sweep by the marks of a damaged image.
    let refused = run(&seal, &["prune"]);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(
        refused.stderr.contains("run `seal fsck --repair`"),
        "{}",
        refused.stderr
    );

    let root: &Path = seal.root();
    std::fs::write(root.join("tmp/blob-abandoned"), "half a blob").unwrap();
    std::fs::create_dir_all(root.join("snapshots/.unpack-abandoned")).unwrap();

    let out = fsck(&seal, &[]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    for line in [
        format!("problem: image docker.io/sealerio/demo:v1: config {config} is missing"),
        "leftover tmp/blob-abandoned (11 B) (an interrupted write".to_string(),
        "leftover snapshots/.unpack-abandoned".to_string(),
    ] {
        assert!(
            out.stdout.contains(&line),
            "no `{line}` in:\n{}",
            out.stdout
        );
    }

    let repaired = fsck(&seal, &["--repair"]);
    assert_eq!(repaired.code, 0, "{}", repaired.stdout);
    for line in [
        "repaired: removed leftover tmp/blob-abandoned",
        "repaired: removed leftover snapshots/.unpack-abandoned",
        "repaired: removed image name docker.io/sealerio/demo:v1",
    ] {
        assert!(
            repaired.stdout.contains(line),
            "no `{line}` in:\n{}",
            repaired.stdout
        );
    }
    assert!(!root.join("tmp/blob-abandoned").exists());
    assert!(!root.join("snapshots/.unpack-abandoned").exists());
    assert_fsck_clean(&seal);

    // Every step is still cached; export writes the config again.
    let rebuilt = seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert_all_cached(&rebuilt);
    assert_eq!(rebuilt.digest(), digest);
    assert!(blob_path(&seal, &config).exists());
    assert_fsck_clean(&seal);
}

/// What a SIGKILLed build leaves (a half-written blob in tmp/) is listed by fsck but is not
/// damage: a store with only such leftovers checks clean (exit 0), and the next build removes
/// them.
#[test]
fn leftovers_of_a_killed_build_are_not_damage() {
    let seal = Seal::new();
    let ctx = two_copies("x\n");
    seal.digest(ctx.path(), "demo:v1", &[]);
    std::fs::write(seal.root().join("tmp/blob-killed"), "half").unwrap();
    let out = fsck(&seal, &[]);
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stdout.contains("leftover tmp/blob-killed"),
        "{}",
        out.stdout
    );
    seal.build_ok(ctx.path(), "demo:v1", &[]);
    assert!(!seal.root().join("tmp/blob-killed").exists());
    assert_fsck_clean(&seal);
}
