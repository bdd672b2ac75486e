//! Snapshots whose files are links to the store's objects (issue 15), through the real binary:
//! a RUN after a COPY of many files sees exactly the tree the context holds (bytes, modes with
//! setuid, owners, which paths are hardlinks), whether the objects were there before or not,
//! and the image digest is the same either way; `seal prune` removes objects nothing links;
//! `seal fsck` finds a corrupt object and `--repair` drops it with its snapshot, after which
//! the next RUN unpacks the layer again. Lite mode: the RUN uses the host's GNU `find`.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::tree_report::{link_groups, many_files, records};
use common::{tool, Ctx, Seal};

/// These tests are about snapshot directories and their objects: a store that never makes
/// images (tests/snapshot_images.rs tests those).
fn directory_seal() -> Seal {
    Seal::new().with_env("SEAL_SNAPSHOT_FORMAT", "directory")
}

/// Every object file of a store.
fn objects(root: &Path) -> Vec<PathBuf> {
    let Ok(shards) = std::fs::read_dir(root.join("snapshots/objects")) else {
        return Vec::new();
    };
    shards
        .flat_map(|s| std::fs::read_dir(s.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn a_run_sees_the_copied_tree_with_or_without_objects_and_digests_agree() {
    let ctx = Ctx::new();
    many_files(&ctx);
    ctx.age();

    // What the context itself holds, by the same report.
    let expected = tool(
        "sh",
        &["-c", "sh report.sh many | grep -v '^INODE\\|^DEVICES'"],
        ctx.path(),
    );
    let expected: Vec<String> = expected.lines().map(str::to_string).collect();
    assert_eq!(expected.len(), 2 * 302 + 11, "302 files and 11 directories");

    // A fresh store: every object is written by this build's unpack.
    let cold = directory_seal();
    let out = cold.build_ok(ctx.path(), "many:1", &["--mode", "lite"]);
    let (meta, sums) = (records(&out.stderr, "META "), records(&out.stderr, "SUM "));
    let seen_many: Vec<String> = meta
        .iter()
        .chain(&sums)
        .filter(|l| l.starts_with("META many/") || l.contains("  many/"))
        .cloned()
        .collect();
    assert_eq!(seen_many, expected, "{}", out.stderr);
    assert!(
        meta.contains(&"META owned/setuid f 4750 1000:42 10".to_string()),
        "{meta:#?}"
    );
    let groups = link_groups(&records(&out.stderr, "INODE "));
    assert_eq!(
        groups,
        BTreeSet::from([vec!["many/hard/a".to_string(), "many/hard/b".to_string()]]),
        "only the layer's hardlink shares an inode, though 300 files have 7 contents and \
         again/ repeats d0's files in another layer"
    );
    let cold_digest = out.digest();
    assert!(
        objects(cold.root()).len() > 7,
        "the snapshot's files are objects"
    );

    // A store that holds every object already (an earlier version of the layer: the same
    // files at the same paths, plus one, unpacked first): the RUN's snapshot is links, and
    // sees, and makes, the same.
    let warm = directory_seal();
    let other = Ctx::new();
    tool(
        "cp",
        &["-a", ctx.path().join("many").to_str().unwrap(), "."],
        other.path(),
    );
    other.file("many/one-more", "an earlier version of the layer\n");
    other.kubefile("FROM scratch\nCOPY many /many\nRUN true\n");
    other.age();
    warm.build_ok(other.path(), "other:1", &["--mode", "lite"]);
    let before = objects(warm.root()).len();
    let out = warm.build_ok(ctx.path(), "many:1", &["--mode", "lite"]);
    assert_eq!(records(&out.stderr, "META "), meta);
    assert_eq!(records(&out.stderr, "SUM "), sums);
    assert_eq!(link_groups(&records(&out.stderr, "INODE ")), groups);
    assert_eq!(out.digest(), cold_digest);
    let added = objects(warm.root()).len() - before;
    assert!(
        added < before,
        "most of the files were links to existing objects ({added} new, {before} before)"
    );
}

#[test]
fn prune_removes_objects_and_fsck_finds_a_corrupt_one() {
    let ctx = Ctx::new();
    many_files(&ctx);
    ctx.age();
    let seal = directory_seal();
    seal.build_ok(ctx.path(), "many:1", &["--mode", "lite"]);
    let objects_before = objects(seal.root());
    assert!(!objects_before.is_empty());

    // A corrupt object: same size, other bytes (a size check alone would not see it).
    let victim = objects_before
        .iter()
        .find(|p| std::fs::metadata(p).unwrap().len() == "content 1\n".len() as u64)
        .unwrap();
    let mode = std::fs::metadata(victim).unwrap().permissions().mode();
    let original = std::fs::read(victim).unwrap();
    std::fs::write(victim, original.to_ascii_uppercase()).unwrap();
    std::fs::set_permissions(victim, std::fs::Permissions::from_mode(mode)).unwrap();
    let fsck = seal.run_in(ctx.path(), &["fsck"]);
    assert_eq!(fsck.code, 1, "{}\n{}", fsck.stdout, fsck.stderr);
    assert!(
        fsck.stdout
            .contains("problem: snapshot object snapshots/objects/")
            && fsck.stdout.contains("do not match its name"),
        "{}",
        fsck.stdout
    );
    let repair = seal.run_in(ctx.path(), &["fsck", "--repair"]);
    assert_eq!(repair.code, 0, "{}\n{}", repair.stdout, repair.stderr);
    assert!(
        repair.stdout.contains("repaired: removed snapshot")
            && repair
                .stdout
                .contains("repaired: deleted corrupt snapshot object"),
        "{}",
        repair.stdout
    );
    assert!(!victim.exists());
    let clean = seal.run_in(ctx.path(), &["fsck"]);
    assert_eq!(clean.code, 0, "{}", clean.stdout);
    assert!(
        clean.stdout.contains("no problems found"),
        "{}",
        clean.stdout
    );

    // The next RUN on that layer unpacks it again, from the intact blob.
    ctx.kubefile(
        "FROM scratch\nCOPY report.sh /\nCOPY many /many\nCOPY --chown=1000:42 owned /owned\n\
         RUN grep -c . many/hard/a many/d0/f1 > counted\n",
    );
    seal.build_ok(ctx.path(), "many:2", &["--mode", "lite"]);
    let victims_back = objects(seal.root()).iter().any(|p| p == victim);
    assert!(victims_back, "the object was written again by the unpack");
    assert_eq!(std::fs::read(victim).unwrap(), original);

    // Nothing named: prune --all removes every snapshot, then every object.
    for name in ["many:1", "many:2"] {
        let rmi = seal.run_in(ctx.path(), &["rmi", name]);
        assert_eq!(rmi.code, 0, "{}", rmi.stderr);
    }
    let dry = seal.run_in(ctx.path(), &["prune", "--all", "--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    let count = objects(seal.root()).len();
    assert!(
        dry.stdout
            .contains(&format!("would delete {count} snapshot objects")),
        "{}",
        dry.stdout
    );
    let prune = seal.run_in(ctx.path(), &["prune", "--all"]);
    assert_eq!(prune.code, 0, "{}", prune.stderr);
    assert!(
        prune
            .stdout
            .contains(&format!("deleted {count} snapshot objects")),
        "{}",
        prune.stdout
    );
    assert!(objects(seal.root()).is_empty());
}

/// A layer gets its snapshot while it is written only when a RUN downstream will mount it: a
/// COPY-only build makes no snapshot and no object (its time is the layer's alone). (That the
/// COPY, not the RUN, made the snapshot when a RUN follows is tests/trace.rs's
/// `the_run_scenario_cold_build_as_a_trace`.)
#[test]
fn only_a_layer_a_run_mounts_is_snapshotted_while_written() {
    let ctx = Ctx::new();
    many_files(&ctx);
    ctx.kubefile("FROM scratch\nCOPY many /many\n");
    ctx.age();
    let seal = directory_seal();
    seal.build_ok(ctx.path(), "copy:1", &[]);
    let snapshots = |root: &Path| -> Vec<String> {
        std::fs::read_dir(root.join("snapshots"))
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.len() == 64)
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(snapshots(seal.root()).is_empty());
    assert!(objects(seal.root()).is_empty());

    let with_run = directory_seal();
    ctx.kubefile("FROM scratch\nCOPY many /many\nRUN true\n");
    let out = with_run.build_ok(ctx.path(), "run:1", &["--mode", "lite"]);
    let made = snapshots(with_run.root());
    assert_eq!(made.len(), 1, "{made:?}\n{}", out.stderr);
    let f1 = with_run
        .root()
        .join("snapshots")
        .join(&made[0])
        .join("many/d0/f1");
    let meta = std::fs::metadata(&f1).unwrap();
    assert_eq!(std::fs::read(&f1).unwrap(), b"content 1\n");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert!(
        std::os::unix::fs::MetadataExt::nlink(&meta) >= 2,
        "a link to its object"
    );
}
