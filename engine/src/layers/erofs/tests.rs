//! The image against its oracle: for generated layer tars, the tree the kernel mounts from
//! the image must be the tree `unpack_into` makes on disk (types, modes, owners, devices,
//! bytes, symlink targets, every xattr, hardlink groups), `fsck.erofs` must accept the image,
//! the same tar must give the same bytes, and hostile tars fail as unpack fails.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tar::EntryType as T;

use super::write_image;
use crate::unpack::{unpack_into, UnpackOptions};
use crate::EngineError;

mod generated;

/// One tar entry to generate.
#[derive(Clone)]
struct E {
    path: Vec<u8>,
    kind: T,
    mode: u32,
    owner: (u64, u64),
    data: Vec<u8>,
    link: Option<Vec<u8>>,
    xattrs: Vec<(&'static str, Vec<u8>)>,
    dev: (u32, u32),
    mtime: u64,
}

fn entry(path: impl AsRef<[u8]>, kind: T) -> E {
    E {
        path: path.as_ref().to_vec(),
        kind,
        mode: if kind == T::Directory { 0o755 } else { 0o644 },
        owner: (0, 0),
        data: Vec::new(),
        link: None,
        xattrs: Vec::new(),
        dev: (0, 0),
        mtime: 1_700_000_000,
    }
}

fn file(path: impl AsRef<[u8]>, data: impl AsRef<[u8]>) -> E {
    E {
        data: data.as_ref().to_vec(),
        ..entry(path, T::Regular)
    }
}

fn dir(path: &str) -> E {
    entry(path, T::Directory)
}

fn link(path: &str, kind: T, target: impl AsRef<[u8]>) -> E {
    E {
        link: Some(target.as_ref().to_vec()),
        mode: 0o777,
        ..entry(path, kind)
    }
}

fn device(path: &str, kind: T, major: u32, minor: u32) -> E {
    E {
        dev: (major, minor),
        ..entry(path, kind)
    }
}

impl E {
    fn mode(mut self, mode: u32) -> E {
        self.mode = mode;
        self
    }
    fn owner(mut self, uid: u64, gid: u64) -> E {
        self.owner = (uid, gid);
        self
    }
    fn xattr(mut self, name: &'static str, value: &[u8]) -> E {
        self.xattrs.push((name, value.to_vec()));
        self
    }
}

/// A tar of `entries`; names go through the builder (GNU long names and links included).
fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let records: Vec<(String, &[u8])> = e
            .xattrs
            .iter()
            .map(|(k, v)| (format!("{}{k}", crate::xattrs::PAX_XATTR_PREFIX), &v[..]))
            .collect();
        if !records.is_empty() {
            b.append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
                .unwrap();
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_uid(e.owner.0);
        h.set_gid(e.owner.1);
        h.set_mtime(e.mtime);
        h.set_size(e.data.len() as u64);
        h.set_device_major(e.dev.0).unwrap();
        h.set_device_minor(e.dev.1).unwrap();
        let path = Path::new(OsStr::from_bytes(&e.path));
        match &e.link {
            Some(l) => b
                .append_link(&mut h, path, Path::new(OsStr::from_bytes(l)))
                .unwrap(),
            None => b.append_data(&mut h, path, &e.data[..]).unwrap(),
        }
    }
    b.into_inner().unwrap()
}

/// A tar with raw names the builder would refuse (`..`, absolute).
fn raw_tar(entries: &[(&str, T, Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, link) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(0);
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        b.append(&h, &[][..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Bytes that do not compress or repeat (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Printable noise (PAX records of the tar crate's reader must be text).
fn letters(len: usize, seed: u64) -> Vec<u8> {
    noise(len, seed).iter().map(|b| b'a' + b % 26).collect()
}

fn image_of(tar: &[u8], dir: &Path) -> (PathBuf, super::ImageSummary) {
    let path = dir.join("layer.erofs");
    let mut out = fs::File::create_new(&path).unwrap();
    let summary = write_image(tar, &mut out).unwrap();
    assert_eq!(out.metadata().unwrap().len(), summary.bytes);
    (path, summary)
}

/// `fsck.erofs` (erofs-utils) must accept the image.
fn fsck(image: &Path) {
    let out = Command::new("fsck.erofs")
        .arg(image)
        .output()
        .expect("fsck.erofs (Debian erofs-utils, scripts/install-system-packages.sh)");
    assert!(
        out.status.success(),
        "fsck.erofs {}: {}{}",
        image.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An erofs mount, detached when dropped.
struct Mounted(tempfile::TempDir);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(self.0.path(), rustix::mount::UnmountFlags::DETACH);
    }
}

fn mount_erofs(image: &Path) -> rustix::io::Result<Mounted> {
    let dir = tempfile::tempdir().unwrap();
    rustix::mount::mount(
        image,
        dir.path(),
        "erofs",
        rustix::mount::MountFlags::RDONLY,
        None,
    )?;
    Ok(Mounted(dir))
}

/// The image of `tar` in `dir`, checked by `fsck.erofs`, mounted; `None` (skipped, said) where
/// this machine cannot mount one.
fn checked_and_mounted(tar: &[u8], dir: &Path) -> Option<Mounted> {
    let (image, _) = image_of(tar, dir);
    fsck(&image);
    mounts_supported().then(|| mount_erofs(&image).unwrap())
}

/// Whether this machine mounts an erofs image from a regular file, tried on one that
/// `mkfs.erofs` made (so a bad image of ours fails its test instead of skipping it).
fn mounts_supported() -> bool {
    static SUPPORTED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = SUPPORTED.get_or_init(|| {
        if !rustix::process::geteuid().is_root() {
            return Err("not root".into());
        }
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        fs::create_dir(&src).unwrap();
        let image = dir.path().join("probe.erofs");
        let made = Command::new("mkfs.erofs")
            .arg(&image)
            .arg(&src)
            .output()
            .expect("mkfs.erofs (Debian erofs-utils)");
        assert!(made.status.success(), "mkfs.erofs failed");
        match mount_erofs(&image) {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("mounting an erofs image from a file: {e}")),
        }
    });
    match result {
        Ok(()) => true,
        Err(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

fn all_xattrs(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut names = vec![0u8; 65536];
    let n = rustix::fs::llistxattr(path, &mut names[..]).unwrap();
    names.truncate(n);
    let mut out = BTreeMap::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let mut value = vec![0u8; 65536];
        let n = rustix::fs::lgetxattr(path, name.as_str(), &mut value[..]).unwrap();
        value.truncate(n);
        out.insert(name, value);
    }
    out
}

/// Paths (the root as ``) and what each is.
type Paths = BTreeMap<Vec<u8>, String>;
/// The paths of each non-directory inode.
type Groups = BTreeSet<Vec<Vec<u8>>>;

/// Every path of the tree at `root`, described; and its hardlink groups.
fn describe(root: &Path) -> (Paths, Groups) {
    let mut paths = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        let path = root.join(&rel);
        let m = fs::symlink_metadata(&path).unwrap();
        let t = m.file_type();
        let what = if t.is_dir() {
            for child in fs::read_dir(&path).unwrap() {
                todo.push(rel.join(child.unwrap().file_name()));
            }
            "dir".to_string()
        } else if t.is_file() {
            let bytes = fs::read(&path).unwrap();
            format!("file {} {}", bytes.len(), blake3::hash(&bytes).to_hex())
        } else if t.is_symlink() {
            format!("symlink -> {:?}", fs::read_link(&path).unwrap())
        } else if t.is_char_device() {
            format!("char {:x}", m.rdev())
        } else if t.is_block_device() {
            format!("block {:x}", m.rdev())
        } else if t.is_fifo() {
            "fifo".to_string()
        } else {
            "other".to_string()
        };
        let key = rel.as_os_str().as_bytes().to_vec();
        if !t.is_dir() {
            inodes.entry(m.ino()).or_default().push(key.clone());
        }
        let links = if t.is_dir() { 0 } else { m.nlink() };
        paths.insert(
            key,
            format!(
                "{what} {:o} {}:{} links={links} {:?}",
                m.permissions().mode() & 0o7777,
                m.uid(),
                m.gid(),
                all_xattrs(&path)
            ),
        );
    }
    let groups = inodes
        .into_values()
        .map(|mut g| {
            g.sort();
            g
        })
        .collect();
    (paths, groups)
}

/// Write the image of `tar`, check it with fsck, and when this machine can mount it compare
/// the mounted tree with `unpack_into`'s.
fn check_against_unpack(tar: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let (image, summary) = image_of(tar, dir.path());
    fsck(&image);
    if !mounts_supported() {
        return;
    }
    let unpacked = dir.path().join("unpacked");
    fs::create_dir(&unpacked).unwrap();
    // The image's root is 0755 0:0; a snapshot's root is the staging directory's.
    fs::set_permissions(&unpacked, fs::Permissions::from_mode(0o755)).unwrap();
    let options = UnpackOptions {
        privileged: true,
        apply_whiteouts: false,
    };
    unpack_into(tar, &unpacked, &options, None).unwrap();
    let mounted = mount_erofs(&image).unwrap();
    let (want, want_groups) = describe(&unpacked);
    let (got, got_groups) = describe(mounted.0.path());
    for (path, what) in &want {
        assert_eq!(
            got.get(path),
            Some(what),
            "{:?}",
            String::from_utf8_lossy(path)
        );
    }
    assert_eq!(got.len(), want.len(), "extra paths in the image");
    check_dirents(mounted.0.path(), mounted.0.path());
    assert_eq!(got_groups, want_groups);
    // One inode a path, less hardlinks; the root counts too.
    assert_eq!(summary.inodes as usize, want_groups.len() + 1 + dirs(&want));
}

/// What `getdents` returns of the image's directories (which path lookups never read):
/// `.` and `..` with their directories' inode numbers, and every child's inode and type.
fn check_dirents(dir: &Path, parent: &Path) {
    let ino = |p: &Path| fs::symlink_metadata(p).unwrap().ino();
    let handle = fs::File::open(dir).unwrap();
    let mut seen = Vec::new();
    for entry in rustix::fs::Dir::read_from(&handle).unwrap() {
        let entry = entry.unwrap();
        let name = OsStr::from_bytes(entry.file_name().to_bytes()).to_os_string();
        let path = match name.as_bytes() {
            b"." => dir.to_path_buf(),
            b".." => parent.to_path_buf(),
            _ => dir.join(&name),
        };
        assert_eq!(entry.ino(), ino(&path), "{}: {name:?}", dir.display());
        let m = fs::symlink_metadata(&path).unwrap();
        assert_eq!(
            entry.file_type(),
            rustix::fs::FileType::from_raw_mode(m.mode()),
            "{}",
            path.display()
        );
        if m.is_dir() && !matches!(name.as_bytes(), b"." | b"..") {
            check_dirents(&path, dir);
        }
        seen.push(name);
    }
    assert!(seen.iter().any(|n| n == ".") && seen.iter().any(|n| n == ".."));
}

fn dirs(paths: &Paths) -> usize {
    paths
        .iter()
        .filter(|(p, d)| !p.is_empty() && d.starts_with("dir"))
        .count()
}

const CAP: &[u8] = &[
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// Every kind of entry and every rule of unpack's, in one layer.
fn kitchen_sink() -> Vec<E> {
    vec![
        dir("./").mode(0o700),
        dir("bin/"),
        file("bin/suid", "#!/bin/sh\n")
            .mode(0o4755)
            .owner(1000, 1000),
        file("bin/sgid", "#!/bin/sh\n").mode(0o2711).owner(1000, 50),
        file("bin/ping", "ping")
            .xattr("security.capability", CAP)
            .xattr("user.a", b"1")
            .xattr("trusted.t", b"x"),
        link("bin/alias", T::Link, "bin/suid"),
        link("bin/alias2", T::Link, "./bin/alias"),
        dir("share/")
            .mode(0o2775)
            .owner(42, 42)
            .xattr("user.d", b"dir")
            .xattr("trusted.overlay.redirect", b"/etc")
            .xattr("user.overlay.opaque", b"y"),
        dir("drop/").mode(0o1777),
        dir("ro/").mode(0o555),
        file("ro/f", "ro").mode(0o444).owner(7, 7),
        link("lnk/abs", T::Symlink, "/etc/passwd"),
        link("lnk/rel", T::Symlink, "../bin/suid"),
        link("lnk/dangling", T::Symlink, "nowhere/x")
            .xattr("user.x", b"dropped")
            .xattr("trusted.s", b"kept")
            .owner(3, 4),
        link("lnk/long", T::Symlink, "t".repeat(300)),
        device("run/fifo", T::Fifo, 0, 0).mode(0o600),
        device("dev/null", T::Char, 1, 3).mode(0o666),
        device("dev/sda", T::Block, 8, 0).mode(0o660).owner(0, 6),
        device("dev/big", T::Char, 259, 0x12345).mode(0o4600),
        file(".wh.gone", ""),
        file("bin/.wh.removed", ""),
        file("share/.wh..wh..opq", ""),
        file("deep/a/b/.wh.c", ""),
        file("kept", "mine"),
        file(".wh.kept", ""),
        file("imp/x", "x"),
        file(".wh.imp", ""),
        file("r", "one"),
        file("r", "two").mode(0o600),
        dir("d2f/"),
        file("d2f/child", "c"),
        file("d2f", "now a file"),
        file("f2d", "a file"),
        dir("f2d/").mode(0o700),
        file("f2d/x", "x"),
        dir("dd/").mode(0o700).owner(5, 5).xattr("user.old", b"1"),
        file("dd/keep", "k"),
        file("dd/.wh..wh..opq", ""),
        dir("dd/").mode(0o750).owner(6, 6).xattr("user.new", b"2"),
        file("empty", ""),
        file("big", noise(3 << 20, 7)).mode(0o755),
        file("block", noise(4096, 8)),
        file("h1", "first"),
        link("h2", T::Link, "h1"),
        file("h1", "second"),
        dir("a/").mode(0o700),
        dir("a/b/").mode(0o711),
        file("a", "a file"),
        dir("a/").mode(0o751),
        file("a/b/c", "c"),
        file("odd/sp ace", "1"),
        file("odd/new\nline", "2"),
        file(b"odd/\xff\xfe".as_slice(), "3"),
        file("odd/ünï", "4"),
        file("odd/-dash", "5"),
        file("odd/...", "6"),
        file(format!("odd/{}", "x".repeat(255)), "7"),
        file(".wh..wh..opq", ""),
        link("lnk/hard-to-whiteout", T::Link, "gone"),
        // Inodes whose xattrs fill most of a block: the next inode starts a new block, and a
        // symlink target that does not fit after them goes to a block of its own.
        file("fat/1", "1").xattr("user.big", &letters(3000, 1)),
        file("fat/2", "2").xattr("trusted.big", &letters(3500, 2)),
        link("fat/3", T::Symlink, "s".repeat(1500)).xattr("trusted.big", &letters(3000, 3)),
        dir("fat/4/").xattr("user.big", &letters(2000, 4)),
    ]
}

#[test]
fn every_kind_of_entry_mounts_as_unpack_makes_it() {
    check_against_unpack(&tar_of(&kitchen_sink()));
}

#[test]
fn a_directory_of_five_thousand_files_spans_many_blocks() {
    let mut entries = vec![dir("many/")];
    for i in 0..5000u64 {
        let len = 1024 + (i as usize * 1543) % 7168;
        entries.push(file(format!("many/file-{i:05}.txt"), noise(len, i)).owner(i % 3, 0));
    }
    check_against_unpack(&tar_of(&entries));
}

/// unpack fails a layer with `user.*` xattrs on a device or fifo (`setxattr` refuses them);
/// the image holds the node without them.
#[test]
fn devices_and_fifos_carry_no_user_xattrs() {
    let tar = tar_of(&[
        device("fifo", T::Fifo, 0, 0)
            .xattr("user.a", b"1")
            .xattr("trusted.b", b"2"),
        device("null", T::Char, 1, 3).xattr("user.a", b"1"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let Some(mounted) = checked_and_mounted(&tar, dir.path()) else {
        return;
    };
    let fifo = all_xattrs(&mounted.0.path().join("fifo"));
    assert_eq!(fifo.keys().collect::<Vec<_>>(), ["trusted.b"]);
    assert!(all_xattrs(&mounted.0.path().join("null")).is_empty());
}

/// Names longer than 255 bytes fail as `open(2)` fails them in unpack; a whiteout's own
/// name may be longer, since the name it hides is shorter.
#[test]
fn names_longer_than_linux_allows_are_refused() {
    let long = "n".repeat(256);
    for path in [long.clone(), format!("{long}/f")] {
        let dir = tempfile::tempdir().unwrap();
        let mut out = fs::File::create_new(dir.path().join("i")).unwrap();
        let err = write_image(&tar_of(&[file(&path, "x")])[..], &mut out).unwrap_err();
        assert!(err.to_string().contains("too long"), "{err}");
    }
    let hidden = "w".repeat(255);
    check_against_unpack(&tar_of(&[file(format!(".wh.{hidden}"), "")]));
}

#[test]
fn the_image_keeps_mtimes() {
    let tar = tar_of(&[file("f", "x"), dir("d/"), link("l", T::Symlink, "f")]);
    let dir = tempfile::tempdir().unwrap();
    let Some(mounted) = checked_and_mounted(&tar, dir.path()) else {
        return;
    };
    for name in ["f", "d", "l"] {
        let m = fs::symlink_metadata(mounted.0.path().join(name)).unwrap();
        assert_eq!(m.mtime(), 1_700_000_000, "{name}");
    }
}

#[test]
fn the_same_tar_gives_the_same_bytes() {
    let tar = tar_of(&kitchen_sink());
    let dir = tempfile::tempdir().unwrap();
    let (first, summary) = image_of(&tar, dir.path());
    // Over an older, longer file, positioned elsewhere: the same bytes still.
    let second = dir.path().join("again.erofs");
    fs::write(&second, vec![7u8; summary.bytes as usize + 8192]).unwrap();
    let mut out = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&second)
        .unwrap();
    std::io::Seek::seek(&mut out, std::io::SeekFrom::Start(100)).unwrap();
    assert_eq!(write_image(&tar[..], &mut out).unwrap(), summary);
    assert_eq!(fs::read(&first).unwrap(), fs::read(&second).unwrap());
    fsck(&first);
}

#[test]
fn an_empty_layer_is_an_empty_root() {
    check_against_unpack(&tar_of(&[]));
}

/// Both writers refuse the tar; the image's error, with unpack's when it is an UnsafeLayer.
fn both_refuse(tar: &[u8]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut out = fs::File::create_new(dir.path().join("i")).unwrap();
    let image = write_image(tar, &mut out).unwrap_err();
    let dest = dir.path().join("unpacked");
    fs::create_dir(&dest).unwrap();
    let options = UnpackOptions {
        privileged: rustix::process::geteuid().is_root(),
        apply_whiteouts: false,
    };
    let unpacked = unpack_into(tar, &dest, &options, None).unwrap_err();
    assert!(matches!(image, EngineError::UnsafeLayer { .. }), "{image}");
    (image.to_string(), unpacked.to_string())
}

#[test]
fn hostile_entries_are_refused_as_unpack_refuses_them() {
    for (entries, reason) in [
        (vec![("/abs", T::Regular, None)], "absolute"),
        (vec![("../evil", T::Regular, None)], "leaves the layer"),
        (vec![("a/../../evil", T::Regular, None)], "leaves the layer"),
        (
            vec![
                ("link", T::Symlink, Some("..")),
                ("link/evil", T::Regular, None),
            ],
            "the path goes through a symlink",
        ),
        (
            vec![
                ("d/", T::Directory, None),
                ("l", T::Symlink, Some("d")),
                ("d/f", T::Regular, None),
                ("h", T::Link, Some("l/f")),
            ],
            "a hardlink through a symlink",
        ),
        (
            vec![("hard", T::Link, Some("../../etc/passwd"))],
            "a hardlink to outside the layer",
        ),
        (
            vec![(".wh.", T::Regular, None)],
            "a whiteout that names no entry",
        ),
        (
            vec![("d/.wh..", T::Regular, None)],
            "a whiteout that names no entry",
        ),
        (
            vec![(".wh...", T::Regular, None)],
            "a whiteout that names no entry",
        ),
        (
            vec![("odd", T::new(b'Z'), None)],
            "unsupported tar entry type",
        ),
    ] {
        let (image, unpacked) = both_refuse(&raw_tar(&entries));
        assert!(image.contains(reason), "{entries:?}: {image}");
        assert_eq!(image, unpacked, "{entries:?}");
    }
}

/// unpack fails these with the `link(2)` error; the image names the reason.
#[test]
fn hardlinks_to_nothing_or_to_a_directory_are_refused() {
    for (entries, reason) in [
        (
            vec![("hard", T::Link, Some("missing"))],
            "outside the layer",
        ),
        (
            vec![("f", T::Regular, None), ("f", T::Link, Some("f"))],
            "outside the layer",
        ),
        (
            vec![("d/", T::Directory, None), ("hard", T::Link, Some("d"))],
            "a directory",
        ),
    ] {
        let (image, _) = both_refuse(&raw_tar(&entries));
        assert!(image.contains(reason), "{entries:?}: {image}");
    }
}

/// What the images are for: as overlay lowers, a whiteout hides the lower layer's file and an
/// opaque directory hides the lower layer's children.
#[test]
fn overlay_reads_whiteouts_and_opaque_dirs_from_images() {
    let lower = tar_of(&[
        file("gone", "lower"),
        file("d/old", "lower"),
        file("keep", "lower"),
    ]);
    let upper = tar_of(&[
        file(".wh.gone", ""),
        file("d/.wh..wh..opq", ""),
        file("d/new", "upper"),
    ]);
    let (l, u) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (lower_image, _) = image_of(&lower, l.path());
    let (upper_image, _) = image_of(&upper, u.path());
    if !mounts_supported() {
        return;
    }
    let (lower, upper) = (
        mount_erofs(&lower_image).unwrap(),
        mount_erofs(&upper_image).unwrap(),
    );
    let merged = tempfile::tempdir().unwrap();
    let options = format!(
        "lowerdir={}:{}",
        upper.0.path().display(),
        lower.0.path().display()
    );
    let options = std::ffi::CString::new(options).unwrap();
    if let Err(e) = rustix::mount::mount(
        "overlay",
        merged.path(),
        "overlay",
        rustix::mount::MountFlags::RDONLY,
        Some(options.as_c_str()),
    ) {
        eprintln!("skipped: overlay over erofs: {e}");
        return;
    }
    let overlay = Mounted(merged);
    let root = overlay.0.path();
    assert!(fs::symlink_metadata(root.join("gone")).is_err());
    assert_eq!(fs::read(root.join("keep")).unwrap(), b"lower");
    let mut children: Vec<_> = fs::read_dir(root.join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    children.sort();
    assert_eq!(children, ["new"]);
}
