//! Unpacking a local tar archive (ADD) into layer entries, safely.
//!
//! The rules are those of the layer unpacker ([`crate::unpack`]), applied to the tree the
//! archive describes rather than to a directory on disk: an entry with an absolute path or a
//! `..` component, a path through a symlink (or through a file) written earlier in the archive,
//! a hardlink to outside the archive or through a symlink, a device node or fifo, and a name
//! that the layer format reserves for whiteouts (`.wh.*`) are refused, naming the entry. A later
//! entry replaces an earlier one at the same path (never writes through it), as tar does.
//!
//! File contents are streamed into a scratch directory (hashed on the way, so the layer writer
//! can verify them) and the caller keeps that directory until the layer is written; nothing is
//! written anywhere else, so a refused archive leaves nothing behind. Owners and mtimes in the
//! archive are dropped: the caller sets the owner (0:0 or `--chown`) and layers normalise mtimes.
//! Modes (setuid, setgid, sticky included), the kept extended attributes of PAX
//! `SCHILY.xattr.*` records ([`crate::xattrs`]) and hardlinks (as hardlink entries to the first
//! name) are kept.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::layer::{LayerEntry, LayerEntryKind};
use crate::llb::collected::WHITEOUT_PREFIX;
use crate::xattrs::{self, Xattrs};
use crate::EngineError;

/// The compression of an archive, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    Tar,
    Gzip,
    Zstd,
}

/// The archive kind of a file called `name`: `.tar`, `.tar.gz`, `.tgz`, `.tar.zst` and
/// `.tar.zstd` are archives; anything else is not.
pub fn archive_kind(name: &str) -> Option<ArchiveKind> {
    let lower = name.to_ascii_lowercase();
    let stem_ok = |suffix: &str| lower.len() > suffix.len() && lower.ends_with(suffix);
    if stem_ok(".tar") {
        Some(ArchiveKind::Tar)
    } else if stem_ok(".tar.gz") || stem_ok(".tgz") {
        Some(ArchiveKind::Gzip)
    } else if stem_ok(".tar.zst") || stem_ok(".tar.zstd") {
        Some(ArchiveKind::Zstd)
    } else {
        None
    }
}

/// What the archive file must hash to (from the context scan the cache key was computed from).
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub size: u64,
    pub blake3: [u8; 32],
}

/// Read the archive at `path` (shown as `name` in errors) and return its entries, paths
/// relative to the archive root, sorted, owners 0:0. Regular files are written into `scratch`
/// (a directory of its own), which must outlive the returned entries.
pub fn unpack_archive(
    path: &Path,
    name: &str,
    kind: ArchiveKind,
    expected: Option<Expected>,
    scratch: &Path,
    cancel: &AtomicBool,
) -> Result<Vec<LayerEntry>, EngineError> {
    let file = fs::File::open(path).map_err(|e| EngineError::io("reading", path, e))?;
    let mut hashing = HashingReader {
        inner: file,
        hasher: blake3::Hasher::new(),
        read: 0,
    };
    let tree = {
        let buffered = BufReader::with_capacity(1 << 20, &mut hashing);
        let reader: Box<dyn Read + '_> = match kind {
            ArchiveKind::Tar => Box::new(buffered),
            ArchiveKind::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
            ArchiveKind::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(buffered)
                    .map_err(|e| bad_archive(name, &e))?,
            ),
        };
        read_tree(reader, name, scratch, cancel)?
    };
    // Hash what is left (tar padding after the end marker) so the whole file is covered.
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| EngineError::io("reading", path, e))?;
    if let Some(expected) = expected {
        if hashing.read != expected.size || *hashing.hasher.finalize().as_bytes() != expected.blake3
        {
            return Err(EngineError::FileChanged {
                path: path.to_path_buf(),
            });
        }
    }
    Ok(tree.into_values().collect())
}

fn read_tree(
    reader: impl Read,
    name: &str,
    scratch: &Path,
    cancel: &AtomicBool,
) -> Result<BTreeMap<String, LayerEntry>, EngineError> {
    let mut archive = tar::Archive::new(reader);
    let mut tree: BTreeMap<String, LayerEntry> = BTreeMap::new();
    let mut files = 0usize;
    let entries = archive.entries().map_err(|e| bad_archive(name, &e))?;
    for entry in entries {
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        let mut entry = entry.map_err(|e| bad_archive(name, &e))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let refuse = |reason: String| EngineError::UnsafeArchive {
            archive: name.to_string(),
            entry: raw.clone(),
            reason,
        };
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            continue;
        }
        let rel = safe_relative(&raw).map_err(|r| refuse(r.into()))?;
        if rel.is_empty() {
            // `./`: the destination itself, which ADD does not change.
            continue;
        }
        if std::str::from_utf8(&entry.path_bytes()).is_err() {
            return Err(refuse("the name is not UTF-8".into()));
        }
        if rel
            .rsplit('/')
            .next()
            .is_some_and(|b| b.starts_with(WHITEOUT_PREFIX))
        {
            return Err(refuse(format!(
                "names starting with `{WHITEOUT_PREFIX}` are whiteouts in the image's layer format"
            )));
        }
        check_parents(&tree, &rel).map_err(refuse)?;
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        let xattrs = xattrs::from_pax(&mut entry).map_err(|e| bad_archive(name, &e))?;
        let new = match kind {
            tar::EntryType::Directory => LayerEntryKind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                files += 1;
                let target = scratch.join(format!("archive-{files}"));
                let (size, blake3) = write_file(&mut entry, &target, cancel)?;
                LayerEntryKind::File {
                    source: target,
                    size,
                    blake3,
                }
            }
            tar::EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .ok_or_else(|| refuse("a symlink without a target".into()))?;
                let target = String::from_utf8(link.into_owned())
                    .map_err(|_| refuse("the symlink target is not UTF-8".into()))?;
                LayerEntryKind::Symlink { target }
            }
            tar::EntryType::Link => {
                let link = entry
                    .link_name_bytes()
                    .ok_or_else(|| refuse("a hardlink without a target".into()))?;
                let link = String::from_utf8_lossy(&link).into_owned();
                let link_rel = safe_relative(&link)
                    .map_err(|_| refuse(format!("a hardlink to `{link}`, outside the archive")))?;
                check_parents(&tree, &link_rel).map_err(refuse)?;
                match tree.get(&link_rel) {
                    Some(LayerEntry {
                        kind:
                            LayerEntryKind::File {
                                source,
                                size,
                                blake3,
                            }
                            | LayerEntryKind::Hardlink {
                                source,
                                size,
                                blake3,
                                ..
                            },
                        mode,
                        xattrs,
                        ..
                    }) => {
                        // A hardlink shares its target's inode: its mode and xattrs too.
                        let kind = LayerEntryKind::Hardlink {
                            target: link_rel.clone(),
                            source: source.clone(),
                            size: *size,
                            blake3: *blake3,
                        };
                        let (mode, xattrs) = (*mode, xattrs.clone());
                        insert(&mut tree, rel, kind, mode, xattrs);
                        continue;
                    }
                    Some(LayerEntry {
                        kind: LayerEntryKind::Symlink { .. },
                        ..
                    }) => {
                        return Err(refuse(format!(
                            "a hardlink through the symlink `{link_rel}`"
                        )))
                    }
                    _ => {
                        return Err(refuse(format!(
                            "a hardlink to `{link}`, which is not a file earlier in the archive"
                        )))
                    }
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                return Err(refuse(
                    "device nodes and fifos cannot be added to an image".into(),
                ))
            }
            other => return Err(refuse(format!("unsupported tar entry type {other:?}"))),
        };
        insert(&mut tree, rel, new, mode, xattrs);
    }
    Ok(tree)
}

/// Put `rel` in the tree; a non-directory replaces whatever was there, children included.
fn insert(
    tree: &mut BTreeMap<String, LayerEntry>,
    rel: String,
    kind: LayerEntryKind,
    mode: u32,
    xattrs: Xattrs,
) {
    let is_dir = kind == LayerEntryKind::Dir;
    if !is_dir {
        remove_children(tree, &rel);
    }
    let mode = if matches!(kind, LayerEntryKind::Symlink { .. }) {
        0o777
    } else {
        mode
    };
    tree.insert(
        rel.clone(),
        LayerEntry {
            path: rel,
            kind,
            mode,
            uid: 0,
            gid: 0,
            xattrs,
        },
    );
}

/// Remove everything below `path` (not `path` itself).
pub fn remove_children(tree: &mut BTreeMap<String, LayerEntry>, path: &str) {
    let prefix = format!("{path}/");
    let doomed: Vec<String> = tree
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for k in doomed {
        tree.remove(&k);
    }
}

/// Err when an ancestor of `rel` in the tree is a symlink (writing there would follow it) or a
/// file.
fn check_parents(tree: &BTreeMap<String, LayerEntry>, rel: &str) -> Result<(), String> {
    let mut end = 0;
    while let Some(slash) = rel[end..].find('/') {
        let parent = &rel[..end + slash];
        match tree.get(parent).map(|e| &e.kind) {
            Some(LayerEntryKind::Symlink { .. }) => {
                return Err(format!("the path goes through the symlink `{parent}`"))
            }
            Some(
                LayerEntryKind::File { .. }
                | LayerEntryKind::Hardlink { .. }
                | LayerEntryKind::Bytes(_)
                | LayerEntryKind::Blob { .. }
                | LayerEntryKind::Node { .. },
            ) => return Err(format!("the path goes through the file `{parent}`")),
            Some(LayerEntryKind::Dir) | None => {}
        }
        end += slash + 1;
    }
    Ok(())
}

/// The path as a clean relative `/`-separated string, or why it is refused.
fn safe_relative(raw: &str) -> Result<String, &'static str> {
    let mut parts: Vec<String> = Vec::new();
    for component in Path::new(raw).components() {
        match component {
            Component::Normal(c) => parts.push(c.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => return Err("the path leaves the destination with `..`"),
            Component::RootDir | Component::Prefix(_) => return Err("the path is absolute"),
        }
    }
    Ok(parts.join("/"))
}

/// Stream an entry's bytes into a new private file; returns (size, blake3).
fn write_file(
    entry: &mut impl Read,
    target: &Path,
    cancel: &AtomicBool,
) -> Result<(u64, [u8; 32]), EngineError> {
    let io_err = |e: io::Error| EngineError::io("unpacking into", target, e);
    let mut out = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(target)
        .map_err(io_err)?;
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(EngineError::Cancelled);
        }
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(io_err)?;
        size += n as u64;
    }
    Ok((size, *hasher.finalize().as_bytes()))
}

fn bad_archive(name: &str, e: &io::Error) -> EngineError {
    EngineError::BadArchive {
        archive: name.to_string(),
        reason: e.to_string(),
    }
}

/// Hashes and counts the archive file's bytes as they are read.
struct HashingReader<R> {
    inner: R,
    hasher: blake3::Hasher,
    read: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lowering decides from the name alone (`seal_llb::paths::is_archive_name`) whether an
    /// ADD source unpacks; the engine must agree.
    #[test]
    fn archive_kind_agrees_with_the_lowering_rule() {
        for name in [
            "a.tar",
            "B.TGZ",
            "c.tar.gz",
            "d.tar.zst",
            "e.tar.zstd",
            ".tar",
            "x.zip",
            "tgz",
        ] {
            assert_eq!(
                archive_kind(name).is_some(),
                seal_llb::paths::is_archive_name(name),
                "{name}"
            );
        }
    }

    type Spec<'a> = (&'a str, tar::EntryType, &'a [u8], Option<&'a str>, u32);

    fn tar_of(entries: &[Spec<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data, link, mode) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            h.set_size(data.len() as u64);
            h.set_uid(1234);
            // Write the raw name so hostile paths survive the builder's own checks.
            let name = h.as_old_mut().name.as_mut();
            name[..path.len()].copy_from_slice(path.as_bytes());
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn run(entries: &[Spec<'_>]) -> (tempfile::TempDir, Result<Vec<LayerEntry>, EngineError>) {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar");
        fs::write(&archive, tar_of(entries)).unwrap();
        let scratch = dir.path().join("scratch");
        fs::create_dir(&scratch).unwrap();
        let result = unpack_archive(
            &archive,
            "a.tar",
            ArchiveKind::Tar,
            None,
            &scratch,
            &AtomicBool::new(false),
        );
        (dir, result)
    }

    fn refused(entries: &[Spec<'_>]) -> String {
        let (dir, result) = run(entries);
        let err = result.unwrap_err().to_string();
        // Nothing was written outside the scratch directory.
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["a.tar", "scratch"]);
        err
    }

    #[test]
    fn kinds_by_name() {
        assert_eq!(archive_kind("a.tar"), Some(ArchiveKind::Tar));
        assert_eq!(archive_kind("a.TGZ"), Some(ArchiveKind::Gzip));
        assert_eq!(archive_kind("a.tar.gz"), Some(ArchiveKind::Gzip));
        assert_eq!(archive_kind("a.tar.zst"), Some(ArchiveKind::Zstd));
        assert_eq!(archive_kind("a.tar.zstd"), Some(ArchiveKind::Zstd));
        assert_eq!(archive_kind(".tar"), None);
        assert_eq!(archive_kind("a.gz"), None);
        assert_eq!(archive_kind("a.zip"), None);
    }

    #[test]
    fn entries_modes_links_and_replacements() {
        use tar::EntryType as T;
        let (_dir, result) = run(&[
            ("./", T::Directory, b"", None, 0o700),
            ("bin/", T::Directory, b"", None, 0o750),
            ("bin/tool", T::Regular, b"#!/bin/sh\n", None, 0o4755),
            ("bin/alias", T::Link, b"", Some("bin/tool"), 0o644),
            ("bin/sym", T::Symlink, b"", Some("/etc/passwd"), 0o644),
            ("etc/x", T::Regular, b"old", None, 0o644),
            ("etc", T::Regular, b"now a file", None, 0o600),
        ]);
        let entries = result.unwrap();
        let listing: Vec<String> = entries
            .iter()
            .map(|e| {
                let kind = match &e.kind {
                    LayerEntryKind::Dir => "dir".to_string(),
                    LayerEntryKind::File { size, .. } => format!("file {size}"),
                    LayerEntryKind::Symlink { target } => format!("-> {target}"),
                    LayerEntryKind::Bytes(_) => "bytes".into(),
                    LayerEntryKind::Blob { size, .. } => format!("blob {size}"),
                    LayerEntryKind::Hardlink { target, size, .. } => {
                        format!("link {target} {size}")
                    }
                    LayerEntryKind::Node { .. } => "node".into(),
                };
                format!("{} {:o} {}:{} {kind}", e.path, e.mode, e.uid, e.gid)
            })
            .collect();
        assert_eq!(
            listing,
            [
                "bin 750 0:0 dir",
                "bin/alias 4755 0:0 link bin/tool 10",
                "bin/sym 777 0:0 -> /etc/passwd",
                "bin/tool 4755 0:0 file 10",
                "etc 600 0:0 file 10",
            ]
        );
    }

    /// An archive's xattrs (PAX `SCHILY.xattr.*`) are kept, except names no layer keeps, and a
    /// hardlink shares its target's xattrs.
    #[test]
    fn xattrs_are_kept_from_pax_records() {
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([
            ("SCHILY.xattr.user.a", &b"1"[..]),
            ("SCHILY.xattr.security.capability", b"cap"),
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.security.selinux", b"label"),
        ])
        .unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_size(1);
        b.append_data(&mut h, "f", &b"x"[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Link);
        h.set_size(0);
        b.append_link(&mut h, "g", "f").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar");
        fs::write(&archive, b.into_inner().unwrap()).unwrap();
        let entries = unpack_archive(
            &archive,
            "a.tar",
            ArchiveKind::Tar,
            None,
            dir.path(),
            &AtomicBool::new(false),
        )
        .unwrap();
        let mut expected = Xattrs::new();
        expected.insert("security.capability".into(), b"cap".to_vec());
        expected.insert("user.a".into(), b"1".to_vec());
        assert_eq!(entries.len(), 2);
        for entry in &entries {
            assert_eq!(entry.xattrs, expected, "{}", entry.path);
            assert_eq!(entry.mode, 0o755, "{}", entry.path);
        }
        assert!(
            matches!(&entries[1].kind, LayerEntryKind::Hardlink { target, .. } if target == "f")
        );
    }

    #[test]
    fn hostile_entries_are_refused_by_name() {
        use tar::EntryType as T;
        let e = refused(&[("../evil", T::Regular, b"x", None, 0o644)]);
        assert!(e.contains("`../evil`") && e.contains("`a.tar`"), "{e}");
        assert!(e.contains("leaves the destination"), "{e}");
        assert!(refused(&[("/abs", T::Regular, b"x", None, 0o644)]).contains("absolute"));
        let e = refused(&[
            ("link", T::Symlink, b"", Some("/tmp"), 0o777),
            ("link/evil", T::Regular, b"x", None, 0o644),
        ]);
        assert!(
            e.contains("`link/evil`") && e.contains("symlink `link`"),
            "{e}"
        );
        assert!(
            refused(&[("hard", T::Link, b"", Some("../../etc/passwd"), 0)])
                .contains("outside the archive")
        );
        assert!(refused(&[("dev", T::Char, b"", None, 0o644)]).contains("device"));
        assert!(refused(&[("d/.wh.x", T::Regular, b"", None, 0o644)]).contains("whiteout"));
    }

    #[test]
    fn a_changed_archive_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let archive = dir.path().join("a.tar");
        fs::write(
            &archive,
            tar_of(&[("f", tar::EntryType::Regular, b"x", None, 0o644)]),
        )
        .unwrap();
        let err = unpack_archive(
            &archive,
            "a.tar",
            ArchiveKind::Tar,
            Some(Expected {
                size: 1,
                blake3: [0; 32],
            }),
            dir.path(),
            &AtomicBool::new(false),
        )
        .unwrap_err();
        assert!(matches!(err, EngineError::FileChanged { .. }), "{err}");
    }
}
