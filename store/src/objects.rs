//! The snapshot object store: every regular file of an unpacked layer kept once, by its bytes
//! *and* its metadata, so that a snapshot is directories, symlinks, special files and hardlinks
//! to objects (issue 15).
//!
//! ```text
//! <root>/snapshots/objects/<2 hex>/<62 hex>[.<n>]   one inode per (bytes, mode, owner, xattrs, n)
//! ```
//!
//! An object's name is its [`ObjectKey`]: blake3 over the blake3 of its bytes, its size, its
//! mode (setuid, setgid and sticky included), owner and extended attributes. Two files with the
//! same bytes but another mode or owner are two objects, so a hardlink never lends one file the
//! metadata of another. Overlayfs never writes a lower file (a RUN that writes one copies it
//! up), so one inode can serve every snapshot that holds the same file.
//!
//! A file links the object `<key>.<n>` (`<key>` for `n` = 0), where the engine derives `n` from
//! the file's path: the same path in the next version of a layer links the same object, while
//! two paths share an inode only when a layer made them hardlinks, so `tar`, `cp -a` or `du`
//! in a RUN see no links the layers did not have. What a RUN still sees: link counts include
//! the object's own name and those of other snapshots.
//!
//! The engine's unpacker names an object with `link(2)` only once its bytes and metadata are
//! complete, so an object is never half-written under its name. An object no snapshot links to
//! (`st_nlink == 1`) is garbage: `seal prune` removes it after the snapshots it sweeps, and
//! `seal fsck` re-hashes every object against its name ([`verify_object`]).
//! This module knows the layout and the key; the engine decides what goes in.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where objects live, relative to the store root (beside the snapshots that link them: a
/// hardlink cannot leave its filesystem).
pub const OBJECTS_DIR: &str = "snapshots/objects";

/// Whether an extended attribute called `name` belongs in a layer, a snapshot and an object
/// key: `user.*`, `trusted.*` and `security.capability`, never overlayfs' own
/// `trusted.overlay.*`/`user.overlay.*` (the engine's `xattrs::kept` is this rule).
pub fn xattr_kept(name: &str) -> bool {
    if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
        return false;
    }
    name.starts_with("user.") || name.starts_with("trusted.") || name == "security.capability"
}

/// The metadata an object carries besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectMeta<'a> {
    pub size: u64,
    /// Permission bits with setuid, setgid and sticky (`& 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Kept extended attributes ([`xattr_kept`]), in name order.
    pub xattrs: &'a [(&'a str, &'a [u8])],
}

/// The name of an object: blake3 of its content hash and its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey([u8; 32]);

impl ObjectKey {
    /// The key of a file whose bytes hash (blake3) to `content` and that carries `meta`.
    pub fn new(content: &[u8; 32], meta: &ObjectMeta<'_>) -> ObjectKey {
        let mut h = blake3::Hasher::new();
        h.update(b"seal.object.v1\0");
        h.update(content);
        h.update(&meta.size.to_le_bytes());
        h.update(&(meta.mode & 0o7777).to_le_bytes());
        h.update(&meta.uid.to_le_bytes());
        h.update(&meta.gid.to_le_bytes());
        h.update(&(meta.xattrs.len() as u64).to_le_bytes());
        for (name, value) in meta.xattrs {
            h.update(&(name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update(&(value.len() as u64).to_le_bytes());
            h.update(value);
        }
        ObjectKey(*h.finalize().as_bytes())
    }

    /// The key spelled as 64 hex digits.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The key and ordinal named by an object's path (`<2 hex>/<62 hex>[.<n>]`), if it is one.
    fn from_parts(dir: &str, file: &str) -> Option<(ObjectKey, u32)> {
        let (file, n) = match file.split_once('.') {
            Some((file, n)) if !n.starts_with('0') && !n.starts_with('+') => {
                (file, n.parse().ok()?)
            }
            Some(_) => return None,
            None => (file, 0),
        };
        if dir.len() != 2 || file.len() != 62 {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(format!("{dir}{file}"), &mut out).ok()?;
        Some((ObjectKey(out), n))
    }
}

/// The path of the `n`th object with `key` in the store at `root` (see the module doc).
pub fn object_path(root: &Path, key: &ObjectKey, n: u32) -> PathBuf {
    let hex = key.hex();
    let shard = root.join(OBJECTS_DIR).join(&hex[..2]);
    match n {
        0 => shard.join(&hex[2..]),
        n => shard.join(format!("{}.{n}", &hex[2..])),
    }
}

/// Every object on disk: key, path, size and link count.
pub(crate) fn list_objects(root: &Path) -> io::Result<Vec<ObjectFile>> {
    let mut out = Vec::new();
    let dir = root.join(OBJECTS_DIR);
    let shards = match fs::read_dir(&dir) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for shard in shards {
        let shard = shard?;
        let shard_name = shard.file_name();
        let Ok(files) = fs::read_dir(shard.path()) else {
            continue;
        };
        for file in files {
            let file = file?;
            let key = ObjectKey::from_parts(
                &shard_name.to_string_lossy(),
                &file.file_name().to_string_lossy(),
            );
            // A read-only view (`du`, `fsck`) may list while a build replaces an object.
            let meta = match fs::symlink_metadata(file.path()) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            out.push(ObjectFile {
                key,
                path: file.path(),
                size: meta.len(),
                links: meta.nlink(),
                inode: (meta.dev(), meta.ino()),
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// One file under [`OBJECTS_DIR`].
#[derive(Debug, Clone)]
pub(crate) struct ObjectFile {
    /// `None` for a file whose name is no key (a stray); else the key and the ordinal.
    pub key: Option<(ObjectKey, u32)>,
    pub path: PathBuf,
    pub size: u64,
    /// `st_nlink`: 1 when no snapshot links it.
    pub links: u64,
    /// (device, inode), to find the snapshots that link it.
    pub inode: (u64, u64),
}

/// The objects nothing will link once the snapshots in `doomed` are gone: those whose links
/// all come from them (plus their own name), and strays whose name is no key.
pub(crate) fn dead_objects<'a>(objects: &'a [ObjectFile], doomed: &[&Path]) -> Vec<&'a ObjectFile> {
    let mut links_in_doomed: HashMap<(u64, u64), u64> = HashMap::new();
    for dir in doomed {
        walk_files(dir, &mut |m| {
            if m.nlink() > 1 {
                *links_in_doomed.entry((m.dev(), m.ino())).or_default() += 1;
            }
        });
    }
    objects
        .iter()
        .filter(|o| {
            o.key.is_none()
                || o.links
                    .saturating_sub(links_in_doomed.get(&o.inode).copied().unwrap_or(0))
                    <= 1
        })
        .collect()
}

/// Call `each` with the metadata of every non-directory under `dir` (not following symlinks).
pub(crate) fn walk_files(dir: &Path, each: &mut dyn FnMut(&fs::Metadata)) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(m) = entry.metadata() else { continue };
            if m.is_dir() {
                stack.push(entry.path());
            } else {
                each(&m);
            }
        }
    }
}

/// True when the object at `path` still hashes to `key`: its bytes, size, mode, owner and kept
/// extended attributes, as [`ObjectKey::new`] saw them when it was written.
pub fn verify_object(path: &Path, key: &ObjectKey) -> io::Result<bool> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.file_type().is_file() {
        return Ok(false);
    }
    let mut file = fs::File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let xattrs = read_kept_xattrs(path)?;
    let pairs: Vec<(&str, &[u8])> = xattrs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    let actual = ObjectKey::new(
        hasher.finalize().as_bytes(),
        &ObjectMeta {
            size,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            xattrs: &pairs,
        },
    );
    Ok(&actual == key)
}

/// The kept extended attributes of `path` (not following symlinks), in name order.
fn read_kept_xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let names = xattr_call(|buf, len| unsafe {
        // SAFETY: `c_path` is a valid C string; `buf` has room for `len` bytes.
        libc::llistxattr(c_path.as_ptr(), buf.cast(), len)
    })?;
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let Ok(text) = std::str::from_utf8(name) else {
            continue;
        };
        if !xattr_kept(text) {
            continue;
        }
        let c_name = std::ffi::CString::new(name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let value = xattr_call(|buf, len| unsafe {
            // SAFETY: both strings are valid C strings; `buf` has room for `len` bytes.
            libc::lgetxattr(c_path.as_ptr(), c_name.as_ptr(), buf.cast(), len)
        })?;
        out.push((text.to_string(), value));
    }
    out.sort();
    Ok(out)
}

/// Call a size-then-fill xattr syscall until the buffer is large enough.
fn xattr_call(call: impl Fn(*mut u8, usize) -> libc::ssize_t) -> io::Result<Vec<u8>> {
    loop {
        let needed = call(std::ptr::null_mut(), 0);
        if needed < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOTSUP) => Ok(Vec::new()),
                _ => Err(e),
            };
        }
        let mut buf = vec![0u8; needed as usize];
        let got = call(buf.as_mut_ptr(), buf.len());
        if got < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ERANGE) {
                continue; // It grew between the two calls.
            }
            return Err(e);
        }
        buf.truncate(got as usize);
        return Ok(buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn meta(mode: u32, uid: u32) -> ObjectMeta<'static> {
        ObjectMeta {
            size: 3,
            mode,
            uid,
            gid: uid,
            xattrs: &[],
        }
    }

    /// Same bytes with another mode, owner or xattr is another object: a hardlink to it would
    /// hand one file the other's setuid bit or owner.
    #[test]
    fn keys_cover_content_and_every_piece_of_metadata() {
        let content = *blake3::hash(b"abc").as_bytes();
        let base = ObjectKey::new(&content, &meta(0o755, 0));
        assert_eq!(base, ObjectKey::new(&content, &meta(0o755, 0)));
        let cap: &[(&str, &[u8])] = &[("security.capability", b"\x01")];
        let others = [
            ObjectKey::new(blake3::hash(b"abd").as_bytes(), &meta(0o755, 0)),
            ObjectKey::new(&content, &meta(0o4755, 0)),
            ObjectKey::new(&content, &meta(0o755, 1000)),
            ObjectKey::new(
                &content,
                &ObjectMeta {
                    gid: 5,
                    ..meta(0o755, 0)
                },
            ),
            ObjectKey::new(
                &content,
                &ObjectMeta {
                    xattrs: cap,
                    ..meta(0o755, 0)
                },
            ),
            ObjectKey::new(
                &content,
                &ObjectMeta {
                    size: 4,
                    ..meta(0o755, 0)
                },
            ),
        ];
        for (i, other) in others.iter().enumerate() {
            assert_ne!(&base, other, "variant {i}");
        }
        let hex = base.hex();
        let shard = Path::new("/s/snapshots/objects").join(&hex[..2]);
        assert_eq!(
            object_path(Path::new("/s"), &base, 0),
            shard.join(&hex[2..])
        );
        let second = object_path(Path::new("/s"), &base, 1);
        assert_eq!(second, shard.join(format!("{}.1", &hex[2..])));
        assert_eq!(ObjectKey::from_parts(&hex[..2], &hex[2..]), Some((base, 0)));
        let name = second.file_name().unwrap().to_str().unwrap();
        assert_eq!(ObjectKey::from_parts(&hex[..2], name), Some((base, 1)));
        for bad in [format!("{}.01", &hex[2..]), format!("{}.x", &hex[2..])] {
            assert_eq!(ObjectKey::from_parts(&hex[..2], &bad), None, "{bad}");
        }
        assert_eq!(ObjectKey::from_parts("zz", &hex[2..]), None);
    }

    /// `verify_object` recomputes the key from the file: bytes and mode changes are caught.
    #[test]
    fn verification_sees_changed_bytes_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("obj");
        fs::write(&path, b"abc").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let m = fs::metadata(&path).unwrap();
        let key = ObjectKey::new(
            blake3::hash(b"abc").as_bytes(),
            &ObjectMeta {
                size: 3,
                mode: 0o640,
                uid: m.uid(),
                gid: m.gid(),
                xattrs: &[],
            },
        );
        assert!(verify_object(&path, &key).unwrap());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(!verify_object(&path, &key).unwrap());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(&path, b"abd").unwrap();
        assert!(!verify_object(&path, &key).unwrap());
    }
}

#[cfg(test)]
mod store_tests {
    use super::*;
    use crate::{Digest, Store};

    /// Write `bytes` as an object with the current owner and mode 0644 and link it into
    /// `snapshot/<name>`, as the engine's unpacker does.
    fn linked_object(store: &Store, snapshot: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        fs::create_dir_all(snapshot).unwrap();
        let file = snapshot.join(name);
        fs::write(&file, bytes).unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let m = fs::metadata(&file).unwrap();
        let key = ObjectKey::new(
            blake3::hash(bytes).as_bytes(),
            &ObjectMeta {
                size: bytes.len() as u64,
                mode: 0o644,
                uid: m.uid(),
                gid: m.gid(),
                xattrs: &[],
            },
        );
        let object = object_path(store.root(), &key, 0);
        fs::create_dir_all(object.parent().unwrap()).unwrap();
        fs::hard_link(&file, &object).unwrap();
        object
    }

    /// `prune` removes the snapshots nothing reaches and then every object only they linked;
    /// an object a kept snapshot links stays, and `fsck` verifies what stays.
    #[test]
    fn prune_removes_objects_only_dead_snapshots_linked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &mut || {}).unwrap();
        let layer = store.blobs().put(b"cached layer").unwrap();
        let live_diff = Digest::of(b"live tar");
        let record = format!(
            r#"{{"layers":[{{"diff_id":"{live_diff}","digest":"{layer}","size":12,"media_type":"x"}}]}}"#
        );
        store.cache_put(&[1; 32], record.as_bytes()).unwrap();
        let snapshots = dir.path().join("snapshots");
        let live = snapshots.join(live_diff.hex());
        let dead = snapshots.join(Digest::of(b"dead tar").hex());
        let shared = linked_object(&store, &live, "shared", b"in both");
        fs::hard_link(&shared, dead.join("shared"))
            .or_else(|_| {
                fs::create_dir_all(&dead)?;
                fs::hard_link(&shared, dead.join("shared"))
            })
            .unwrap();
        let only_dead = linked_object(&store, &dead, "gone", b"only in the dead one");

        let dry = store
            .prune(&crate::PruneOptions {
                dry_run: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(dry.snapshots.count, 1);
        assert_eq!(dry.objects.count, 1, "{dry:?}");
        assert_eq!(dry.objects.bytes, b"only in the dead one".len() as u64);
        let report = store.prune(&crate::PruneOptions::default()).unwrap();
        assert_eq!(report.objects, dry.objects);
        assert!(!dead.exists() && !only_dead.exists());
        assert!(shared.exists() && live.join("shared").exists());
        let fsck = store.fsck().unwrap();
        assert_eq!(fsck.objects, 1);
        assert!(fsck.problems.is_empty(), "{:?}", fsck.problems);
    }

    /// A corrupt object is a problem; `--repair` deletes it and the snapshot that links it
    /// (the same inode: as broken), and leaves the other snapshots alone.
    #[test]
    fn fsck_finds_a_corrupt_object_and_repair_drops_its_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), &mut || {}).unwrap();
        let snapshots = dir.path().join("snapshots");
        let broken = snapshots.join(Digest::of(b"one").hex());
        let fine = snapshots.join(Digest::of(b"two").hex());
        let object = linked_object(&store, &broken, "f", b"original bytes");
        linked_object(&store, &fine, "g", b"other bytes");
        assert!(store.fsck().unwrap().problems.is_empty());

        // Same length, other bytes: a size check alone would not see it.
        fs::write(&object, b"ORIGINAL bytes").unwrap();
        let report = store.fsck().unwrap();
        let lines: Vec<String> = report.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].contains("do not match its name"), "{lines:?}");
        let done = store.repair(&report).unwrap();
        assert_eq!(done.len(), 2, "{done:?}");
        assert!(!object.exists() && !broken.exists());
        assert!(fine.join("g").exists());
        assert!(store.fsck().unwrap().problems.is_empty());
    }
}
