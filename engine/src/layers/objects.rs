//! A snapshot's regular files as hardlinks to the store's objects
//! ([`seal_store::objects`]): a file whose bytes and metadata some snapshot already holds
//! costs one `link(2)` instead of a create, a write and three metadata calls (issue 15).
//!
//! A file's bytes are read from the layer and hashed first (files up to [`BUFFERED_MAX`] in
//! memory), so the key — bytes, size, mode, owner, kept xattrs — is known before anything is
//! created; a bigger file is written to its place while it is hashed, and named as an object
//! when none exists (else it stays a copy of its own). When the object
//! exists the file is a link to it. Otherwise the file is written at its place in the snapshot
//! with its owner, then its mode, then its xattrs (the unpacker's order: `chown` clears setuid
//! and capabilities), and only then linked to the object's name, so no object is ever visible
//! half-written. Used for privileged unpacks only: without root an object could not carry the
//! owner its key names.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;

use seal_store::objects::{object_path, ObjectKey, ObjectMeta};

use crate::xattrs::{self, Xattrs};

/// Files up to this size are read into memory and hashed before anything is written, so a
/// file that has an object is never written at all.
pub const BUFFERED_MAX: u64 = 8 << 20;

/// The metadata of a regular file entry.
#[derive(Debug, Clone, Copy)]
pub struct FileMeta<'a> {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// The entry's extended attributes; only kept names are set and keyed.
    pub xattrs: &'a Xattrs,
}

/// Places the regular files of one snapshot as links to the objects of the store at `root`.
///
/// A file links `<key>.<n>`, where `n` comes from the file's path: the same path with the same
/// bytes and metadata in the next build's layer links the same object (the case this is for),
/// while equal files at different paths are different objects — in one snapshot and across
/// the layers of a rootfs — so a RUN never sees two paths share an inode that the layers did
/// not link (`cp -a`, `tar`, `rsync -H` and `du` inside a RUN see what Docker shows). Two
/// paths of one snapshot whose `n` collide take the next free one.
#[derive(Debug)]
pub struct ObjectPlacer {
    root: std::path::PathBuf,
    /// The ordinals each key has used in this snapshot.
    seen: HashMap<ObjectKey, HashSet<u32>>,
}

impl ObjectPlacer {
    /// A placer for one new snapshot, with the objects of the store whose root is `root`.
    pub fn new(root: &Path) -> ObjectPlacer {
        ObjectPlacer {
            root: root.to_path_buf(),
            seen: HashMap::new(),
        }
    }

    /// The object path of the file at `rel` (its path in the layer) with `key`.
    fn next_object(&mut self, key: ObjectKey, rel: &Path) -> std::path::PathBuf {
        let h = blake3::hash(rel.as_os_str().as_encoded_bytes());
        let b = h.as_bytes();
        let mut n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let used = self.seen.entry(key).or_default();
        while !used.insert(n) {
            n = n.wrapping_add(1);
        }
        object_path(&self.root, &key, n)
    }

    /// Create the regular file `target` (which must not exist; `rel` is its path in the
    /// layer) with the `size` bytes of `data` and `meta`: a link to its object, which is
    /// written first when missing.
    pub fn place(
        &mut self,
        data: &mut dyn Read,
        size: u64,
        target: &Path,
        rel: &Path,
        meta: &FileMeta<'_>,
    ) -> io::Result<()> {
        let kept: Vec<(&str, &[u8])> = meta
            .xattrs
            .iter()
            .filter(|(n, _)| xattrs::kept(n))
            .map(|(n, v)| (n.as_str(), v.as_slice()))
            .collect();
        let key_of = |content: &blake3::Hash, size: u64| {
            ObjectKey::new(
                content.as_bytes(),
                &ObjectMeta {
                    size,
                    mode: meta.mode & 0o7777,
                    uid: meta.uid,
                    gid: meta.gid,
                    xattrs: &kept,
                },
            )
        };
        if size <= BUFFERED_MAX {
            let mut bytes = Vec::with_capacity(size as usize);
            data.take(size).read_to_end(&mut bytes)?;
            let key = key_of(&blake3::hash(&bytes), bytes.len() as u64);
            let object = self.next_object(key, rel);
            if link_existing(&object, bytes.len() as u64, target)? {
                return Ok(());
            }
            let mut file = create_new(target)?;
            file.write_all(&bytes)?;
            set_metadata(&file, meta, &kept)?;
            drop(file);
            return name_object(target, &object);
        }
        let mut file = create_new(target)?;
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut written = 0u64;
        let mut limited = data.take(size);
        loop {
            let n = limited.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])?;
            written += n as u64;
        }
        let key = key_of(&hasher.finalize(), written);
        set_metadata(&file, meta, &kept)?;
        drop(file);
        // When the object exists, this file stays a copy of its own: its bytes are written
        // already, and files this big are few.
        let object = self.next_object(key, rel);
        name_object(target, &object)
    }
}

/// Link `target` to `object` when the object exists and has the expected size. An object of
/// another size (truncated by a power loss before its data reached the disk) is removed, so
/// [`name_object`] replaces it with the file about to be written. `Ok(false)` also when the
/// object has as many links as the filesystem allows: the file is then written as its own.
fn link_existing(object: &Path, size: u64, target: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(object) {
        Ok(m) if m.file_type().is_file() && m.len() == size => {}
        Ok(_) => {
            tracing::warn!(
                "snapshot object {} has the wrong size; replacing it",
                object.display()
            );
            remove_if_present(object)?;
            return Ok(false);
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    match fs::hard_link(object, target) {
        Ok(()) => Ok(true),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound
                || e.raw_os_error() == Some(rustix::io::Errno::MLINK.raw_os_error()) =>
        {
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Give the complete file `target` the object's name. When another unpack (a parallel one)
/// named the same object first, or the object is full of links, `target` stays a file of its
/// own: same bytes and metadata, only not shared.
fn name_object(target: &Path, object: &Path) -> io::Result<()> {
    let link = || fs::hard_link(target, object);
    let result = match link() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(shard) = object.parent() {
                fs::create_dir_all(shard)?;
            }
            link()
        }
        other => other,
    };
    match result {
        Ok(()) => Ok(()),
        Err(e)
            if e.kind() == io::ErrorKind::AlreadyExists
                || e.raw_os_error() == Some(rustix::io::Errno::MLINK.raw_os_error()) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn create_new(target: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)
}

/// Owner, then mode, then xattrs, on the open file: each would undo a part of the one before.
fn set_metadata(file: &File, meta: &FileMeta<'_>, kept: &[(&str, &[u8])]) -> io::Result<()> {
    let fd = file.as_fd();
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(meta.uid)),
        Some(rustix::fs::Gid::from_raw(meta.gid)),
    )?;
    rustix::fs::fchmod(fd, rustix::fs::Mode::from_raw_mode(meta.mode & 0o7777))?;
    for (name, value) in kept {
        rustix::fs::fsetxattr(fd, *name, value, rustix::fs::XattrFlags::empty())?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn privileged() -> bool {
        rustix::process::geteuid().is_root()
    }

    /// Place `bytes` at `dir/rel`.
    fn place(placer: &mut ObjectPlacer, dir: &Path, rel: &str, bytes: &[u8], mode: u32, uid: u32) {
        let xattrs = Xattrs::new();
        let meta = FileMeta {
            mode,
            uid,
            gid: uid,
            xattrs: &xattrs,
        };
        placer
            .place(
                &mut &bytes[..],
                bytes.len() as u64,
                &dir.join(rel),
                Path::new(rel),
                &meta,
            )
            .unwrap();
    }

    /// Snapshots share an inode for equal bytes and metadata; equal bytes with another mode
    /// or owner do not, so no file gets another's setuid bit or owner through a link. Within
    /// one snapshot, two equal files are two inodes (the layer did not link them), and the
    /// next snapshot with the same two files links the same two objects.
    #[test]
    fn files_share_an_inode_only_with_equal_metadata() {
        if !privileged() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (snap, next) = (dir.path().join("snap"), dir.path().join("next"));
        fs::create_dir(&snap).unwrap();
        fs::create_dir(&next).unwrap();
        let mut placer = ObjectPlacer::new(dir.path());
        place(&mut placer, &snap, "a", b"same", 0o755, 0);
        place(&mut placer, &snap, "b", b"same", 0o755, 0);
        place(&mut placer, &snap, "suid", b"same", 0o4755, 0);
        place(&mut placer, &snap, "user", b"same", 0o755, 1000);
        let mut placer = ObjectPlacer::new(dir.path());
        place(&mut placer, &next, "a", b"same", 0o755, 0);
        place(&mut placer, &next, "b", b"same", 0o755, 0);
        // Another layer with the same file at another path: its own inode.
        place(&mut placer, &next, "elsewhere", b"same", 0o755, 0);
        let m = |p: &Path| fs::symlink_metadata(p).unwrap();
        let m = |n: &str| m(&snap.join(n));
        assert_ne!(m("a").ino(), m("b").ino());
        assert_eq!(m("a").ino(), fs::metadata(next.join("a")).unwrap().ino());
        assert_eq!(m("b").ino(), fs::metadata(next.join("b")).unwrap().ino());
        assert_eq!(m("a").nlink(), 3, "two snapshots and the object");
        let elsewhere = fs::metadata(next.join("elsewhere")).unwrap().ino();
        assert!(elsewhere != m("a").ino() && elsewhere != m("b").ino());
        assert_ne!(m("a").ino(), m("suid").ino());
        assert_ne!(m("a").ino(), m("user").ino());
        assert_eq!(m("suid").permissions().mode() & 0o7777, 0o4755);
        assert_eq!((m("user").uid(), m("user").gid()), (1000, 1000));
        assert_eq!(fs::read(snap.join("suid")).unwrap(), b"same");
    }

    /// A big file streams to its place and becomes the object; a second copy of it stays a
    /// file of its own (its bytes were written before its key was known), with the same
    /// bytes and metadata.
    #[test]
    fn big_files_stream_to_their_place() {
        if !privileged() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut placer = ObjectPlacer::new(dir.path());
        let bytes = vec![7u8; (BUFFERED_MAX + 10) as usize];
        let (one, two) = (dir.path().join("one"), dir.path().join("two"));
        fs::create_dir(&one).unwrap();
        fs::create_dir(&two).unwrap();
        place(&mut placer, &one, "big", &bytes, 0o4755, 0);
        let mut placer = ObjectPlacer::new(dir.path());
        place(&mut placer, &two, "big", &bytes, 0o4755, 0);
        let m = |d: &Path| fs::symlink_metadata(d.join("big")).unwrap();
        assert_eq!(m(&one).nlink(), 2, "one and its object");
        assert_eq!(m(&two).nlink(), 1);
        assert_eq!(m(&two).permissions().mode() & 0o7777, 0o4755);
        assert_eq!(fs::read(two.join("big")).unwrap(), bytes);
    }

    /// An object cut short (a power loss before its data reached the disk) is not linked: it
    /// is replaced by the file being written.
    #[test]
    fn a_truncated_object_is_replaced() {
        if !privileged() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut placer = ObjectPlacer::new(dir.path());
        let (one, two) = (dir.path().join("one"), dir.path().join("two"));
        fs::create_dir(&one).unwrap();
        fs::create_dir(&two).unwrap();
        place(&mut placer, &one, "f", b"content", 0o644, 0);
        let object = fs::read_dir(dir.path().join(seal_store::objects::OBJECTS_DIR))
            .unwrap()
            .flat_map(|shard| fs::read_dir(shard.unwrap().path()).unwrap())
            .map(|e| e.unwrap().path())
            .next()
            .unwrap();
        // Break the link first, as a crash of the first unpack would have left things.
        fs::remove_file(one.join("f")).unwrap();
        fs::write(&object, b"").unwrap();
        let mut placer = ObjectPlacer::new(dir.path());
        place(&mut placer, &two, "f", b"content", 0o644, 0);
        assert_eq!(fs::read(two.join("f")).unwrap(), b"content");
        assert_eq!(fs::read(&object).unwrap(), b"content");
        assert_eq!(
            fs::metadata(&object).unwrap().ino(),
            fs::metadata(two.join("f")).unwrap().ino()
        );
    }
}
