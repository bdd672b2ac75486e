//! Extended attributes a layer carries: which ones, how they are read from a file, set on one,
//! and spelled in a tar (PAX `SCHILY.xattr.<name>` records, as GNU tar, Go's archive/tar and
//! containerd spell them).
//!
//! Kept are `user.*`, `security.capability` (file capabilities) and `trusted.*`; never
//! overlayfs' own `trusted.overlay.*` and `user.overlay.*` (in an upper dir they are overlay's
//! bookkeeping — origin, impure, opaque — and from a layer they would steer the overlay mount of
//! the next RUN: a `redirect` could point a directory anywhere in the lower layers), nor
//! `security.selinux` and other labels of the machine that built the layer, nor POSIX ACLs
//! (`system.*`, which tar spells differently). Callers read and write only kept names, so
//! what a layer says and what a snapshot holds agree.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::EngineError;

/// The PAX record prefix of an extended attribute.
pub const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

/// Extended attributes by name, in name order (the order they are written in a tar).
pub type Xattrs = BTreeMap<String, Vec<u8>>;

/// Whether an extended attribute called `name` belongs in a layer.
/// The rule lives in the store ([`seal_store::objects::xattr_kept`]), whose snapshot object
/// keys and `fsck` must agree with what a layer keeps.
pub fn kept(name: &str) -> bool {
    seal_store::objects::xattr_kept(name)
}

/// The kept extended attributes of `path` (not following a symlink).
pub fn read(path: &Path) -> Result<Xattrs, EngineError> {
    let err = |e: io::Error| EngineError::io("listing the extended attributes of", path, e);
    let mut out = Xattrs::new();
    let names = match list(path) {
        Ok(names) => names,
        // A filesystem without xattrs holds none to keep.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
            return Ok(out)
        }
        Err(e) => return Err(err(e)),
    };
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            tracing::warn!(
                "not recording a non-UTF-8 extended attribute name of {}",
                path.display()
            );
            continue;
        };
        if !kept(name) {
            continue;
        }
        match get(path, name) {
            Ok(value) => {
                out.insert(name.to_string(), value);
            }
            // Removed between the listing and the read.
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODATA.raw_os_error()) => {}
            Err(e) => return Err(xattr_error("reading", name, path, e)),
        }
    }
    Ok(out)
}

/// How [`apply`] treats the target.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Root may set `trusted.*` and `security.capability`; others only `user.*`, and those are
    /// skipped silently (an unprivileged unpack cannot hold them, as it cannot hold owners).
    pub privileged: bool,
    /// The target is a symlink: Linux allows no `user.*` attribute on one.
    pub symlink: bool,
    /// The target existed before (a directory a lower layer of a flattened rootfs made): kept
    /// attributes it has that `wanted` lacks are removed, since the later entry replaces its
    /// metadata.
    pub existed: bool,
}

/// Set the kept attributes of `wanted` on `path` (not following a symlink). Call it after the
/// owner is set: `chown` clears `security.capability`.
pub fn apply(path: &Path, wanted: &Xattrs, options: ApplyOptions) -> Result<(), EngineError> {
    let allowed = |name: &str| {
        kept(name)
            && (options.privileged || name.starts_with("user."))
            && !(options.symlink && name.starts_with("user."))
    };
    if options.existed {
        for (name, _) in read(path)?.iter().filter(|(n, _)| !wanted.contains_key(*n)) {
            if allowed(name) {
                rustix::fs::lremovexattr(path, name.as_str())
                    .map_err(|e| xattr_error("removing", name, path, e.into()))?;
            }
        }
    }
    for (name, value) in wanted.iter().filter(|(n, _)| allowed(n)) {
        rustix::fs::lsetxattr(path, name.as_str(), value, rustix::fs::XattrFlags::empty())
            .map_err(|e| xattr_error("setting", name, path, e.into()))?;
    }
    Ok(())
}

/// The kept attributes among a tar entry's PAX records (`SCHILY.xattr.<name>=<value>`).
pub fn from_pax<R: io::Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Xattrs> {
    let mut out = Xattrs::new();
    let Some(extensions) = entry.pax_extensions()? else {
        return Ok(out);
    };
    for extension in extensions {
        let extension = extension?;
        let Ok(key) = extension.key() else { continue };
        if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
            if kept(name) {
                out.insert(name.to_string(), extension.value_bytes().to_vec());
            }
        }
    }
    Ok(out)
}

fn xattr_error(action: &'static str, name: &str, path: &Path, source: io::Error) -> EngineError {
    EngineError::Xattr {
        action,
        name: name.to_string(),
        path: PathBuf::from(path),
        source,
    }
}

fn list(path: &Path) -> io::Result<Vec<u8>> {
    loop {
        let size = rustix::fs::llistxattr_query(path)?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        match rustix::fs::llistxattr(path, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            // Grew between the two calls: ask again.
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

fn get(path: &Path, name: &str) -> io::Result<Vec<u8>> {
    loop {
        let size = rustix::fs::lgetxattr_query(path, name)?;
        let mut buf = vec![0u8; size];
        match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_names_a_layer_keeps() {
        for name in [
            "user.mime_type",
            "security.capability",
            "trusted.md5",
            "trusted.overlayish",
        ] {
            assert!(kept(name), "{name}");
        }
        for name in [
            "trusted.overlay.opaque",
            "trusted.overlay.redirect",
            "trusted.overlay.origin",
            "user.overlay.opaque",
            "security.selinux",
            "security.ima",
            "system.posix_acl_access",
            "capability",
        ] {
            assert!(!kept(name), "{name}");
        }
    }

    /// `user.*` attributes round-trip on the filesystem the tests (and the store) run on;
    /// overlay's own and unkept names are neither read nor set.
    #[test]
    fn read_and_apply_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let mut wanted = Xattrs::new();
        wanted.insert("user.a".into(), b"1".to_vec());
        wanted.insert("user.b".into(), vec![0, 255, 10]);
        wanted.insert("user.overlay.opaque".into(), b"y".to_vec());
        let options = ApplyOptions {
            privileged: false,
            symlink: false,
            existed: false,
        };
        apply(&file, &wanted, options).unwrap();
        wanted.remove("user.overlay.opaque");
        assert_eq!(read(&file).unwrap(), wanted);
        assert!(get(&file, "user.overlay.opaque").is_err());
        // A later entry for the same path replaces the set: `user.a` goes, `user.c` comes.
        let mut later = Xattrs::new();
        later.insert("user.b".into(), b"2".to_vec());
        later.insert("user.c".into(), b"3".to_vec());
        apply(
            &file,
            &later,
            ApplyOptions {
                existed: true,
                ..options
            },
        )
        .unwrap();
        assert_eq!(read(&file).unwrap(), later);
    }
}
