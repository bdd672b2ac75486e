//! The overlay mounts of one step. Each lower is passed to the kernel on its own (`fsconfig`'s
//! `lowerdir+`, Linux 6.8), so no option string has to fit one page and no per-layer link is
//! made (the `l/N` symlinks this replaced cost an inode each: ~170 µs apiece on this machine's
//! disk, 0.3 s for a RUN over 500 layers). Past [`MAX_LOWERS_PER_MOUNT`] layers (overlayfs
//! stacks at most 500), the layers are grouped bottom-up into read-only overlays under the
//! run directory's `l/` that become the lowers of the step's overlay (one level of nesting,
//! which overlayfs allows on a store that is not itself on overlayfs). A lower that is an EROFS
//! image is mounted by the step's setup on its own, detached, and passed by its fd (`setup.rs`).

use std::path::{Path, PathBuf};

use crate::executor::{ExecRequest, Lower};
use crate::EngineError;

/// The environment variable that picks the snapshot form of RUN lowers: `auto` (the default:
/// images where [`images_usable`] finds they work, directories elsewhere), `image` (images or
/// an error saying why not) or `directory`.
pub const SNAPSHOT_FORMAT_VAR: &str = "SEAL_SNAPSHOT_FORMAT";

/// Whether a lite or container RUN's lowers are snapshot images (`layers/snapshot_image.rs`):
/// as root, unless [`SNAPSHOT_FORMAT_VAR`] says `directory`, when the kernel mounts an EROFS
/// image from a file of this store (Linux ≥ 6.12 built with `EROFS_FS_BACKED_BY_FILE`) and the
/// store's file system keeps the image's hash xattr. Probed once per process by writing a tiny
/// image there and mounting it detached (it appears in no mount table and goes with its fd).
pub fn images_usable(store: &seal_store::Store) -> Result<bool, EngineError> {
    static PROBE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let wanted = std::env::var(SNAPSHOT_FORMAT_VAR).unwrap_or_default();
    let required = match wanted.as_str() {
        "" | "auto" => false,
        "image" => true,
        "directory" => return Ok(false),
        other => {
            return Err(EngineError::Spawn {
                what: "RUN steps".into(),
                reason: format!(
                    "{SNAPSHOT_FORMAT_VAR}={other:?} is not a snapshot format; use `auto`, \
                     `image` or `directory`"
                ),
            })
        }
    };
    if !rustix::process::geteuid().is_root() {
        return Ok(false);
    }
    match PROBE.get_or_init(|| probe_image_mount(store)) {
        Ok(()) => Ok(true),
        Err(_) if !required => Ok(false),
        Err(why) => Err(EngineError::Spawn {
            what: "RUN steps".into(),
            reason: format!(
                "{SNAPSHOT_FORMAT_VAR}=image, but snapshot images cannot be used here: {why}; \
                 they need Linux 6.12 or later built with EROFS_FS_BACKED_BY_FILE and a store \
                 on a file system with user xattrs (unset it to use directories)"
            ),
        }),
    }
}

/// Write an empty layer's image in the store, mark it, and mount it.
fn probe_image_mount(store: &seal_store::Store) -> Result<(), String> {
    let mut staged = crate::layers::snapshot_image::stage(store).map_err(|e| e.to_string())?;
    let empty_tar = [0u8; 1024];
    crate::layers::erofs::write_image(&empty_tar[..], staged.as_file_mut())
        .map_err(|e| e.to_string())?;
    rustix::fs::fsetxattr(
        staged.as_file(),
        crate::layers::snapshot_image::HASH_XATTR,
        b"probe",
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(|e| format!("setting an xattr on {}: {e}", staged.path().display()))?;
    let mount = crate::executor::setup::mount_image(staged.path())
        .map_err(|e| format!("mounting an EROFS image from a file: {e}"))?;
    drop(mount);
    Ok(())
}

/// Lowers of one overlay mount: under overlayfs' limit of 500, with room to spare.
pub const MAX_LOWERS_PER_MOUNT: usize = 400;

/// One overlay mount, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayMount {
    /// The lowers, uppermost first.
    pub lowers: Vec<Lower>,
    /// The other options (`upperdir=...,workdir=...`; empty for a read-only group).
    pub options: String,
    /// Where to mount: a group's directory under `l/`, or the step's merged dir.
    pub target: PathBuf,
}

/// The mounts that build `request`'s merged rootfs (creating the directories they need).
pub fn prepare(request: &ExecRequest) -> Result<Vec<OverlayMount>, EngineError> {
    let links = request.run_dir.join("l");
    let mut lowers: Vec<Lower> = request.lowers.clone();
    for lower in &lowers {
        // The kernel parses none of it now, but a lower is still a path of the store.
        utf8(lower.path())?;
    }
    if lowers.is_empty() {
        let empty = links.join("e");
        std::fs::create_dir_all(&empty).map_err(|e| EngineError::io("creating", &empty, e))?;
        lowers.push(Lower::Dir(empty));
    }
    let mut mounts = Vec::new();
    // Group bottom-up until one mount can take what is left.
    while lowers.len() > MAX_LOWERS_PER_MOUNT {
        let mut grouped = Vec::new();
        for chunk in lowers.chunks(MAX_LOWERS_PER_MOUNT) {
            if chunk.len() == 1 {
                grouped.push(chunk[0].clone());
                continue;
            }
            let target = links.join(format!("_{}", mounts.len()));
            std::fs::create_dir_all(&target)
                .map_err(|e| EngineError::io("creating", &target, e))?;
            mounts.push(OverlayMount {
                lowers: top_first(chunk),
                options: xino(chunk).trim_start_matches(',').to_string(),
                target: target.clone(),
            });
            grouped.push(Lower::Dir(target));
        }
        lowers = grouped;
    }
    mounts.push(OverlayMount {
        lowers: top_first(&lowers),
        options: format!(
            "upperdir={},workdir={},redirect_dir=off,metacopy=off,index=off{}",
            utf8(&request.upper())?,
            utf8(&request.work())?,
            xino(&request.lowers)
        ),
        target: request.merged(),
    });
    Ok(mounts)
}

/// For kernels without `lowerdir+`: a link per lower (uppermost first) in the new directory
/// `links`, named `0`, `1`, ... in base 36, and the `lowerdir=` option naming them relative
/// to `links` (400 lowers take ~1.6 KB of the one-page option string).
pub fn legacy_lowerdir(lowers: &[PathBuf], links: &Path) -> std::io::Result<String> {
    std::fs::create_dir_all(links)?;
    let mut names = Vec::with_capacity(lowers.len());
    for (i, lower) in lowers.iter().enumerate() {
        let name = short_name(i);
        std::os::unix::fs::symlink(lower, links.join(&name))?;
        names.push(name);
    }
    Ok(format!("lowerdir={}", names.join(":")))
}

/// `0`, `1`, ... `z`, `10`, ...: base 36, so 1,296 layers take two characters.
fn short_name(mut i: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[i % 36]);
        i /= 36;
        if i == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// `,xino=auto` when a lower is an image: each image is a file system of its own, and without
/// xino overlayfs gives each layer's files their own `st_dev` (so `find -xdev` would stop at a
/// layer) and inode numbers that repeat across layers (so tools would see hardlinks that are
/// not). With it every entry has the overlay's device and a unique inode number, as on
/// snapshot directories of one file system. `auto`, not `on`: `on` also makes overlayfs mark
/// every directory a step creates as opaque, which would put a `.wh..wh..opq` in the layer
/// for each new directory and change its digest. `auto` needs the store's file system to use
/// 32-bit inode numbers (ext4 does); elsewhere the overlay mounts as without it.
fn xino(lowers: &[Lower]) -> &'static str {
    match lowers.iter().any(|l| matches!(l, Lower::Image(_))) {
        true => ",xino=auto",
        false => "",
    }
}

/// overlayfs wants the uppermost lower first.
fn top_first(bottom_up: &[Lower]) -> Vec<Lower> {
    bottom_up.iter().rev().cloned().collect()
}

/// A path for mount options: UTF-8, without the separators overlayfs parses.
fn utf8(path: &Path) -> Result<String, EngineError> {
    let s = path.to_str().ok_or_else(|| EngineError::NonUtf8Path {
        path: PathBuf::from(path),
    })?;
    if s.contains([':', ',']) {
        return Err(EngineError::Spawn {
            what: "the overlay mount".into(),
            reason: format!(
                "the store path {s} contains `:` or `,`; use a store path without them"
            ),
        });
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llb::{NetworkMode, SecurityMode};

    fn request(dir: &Path, lowers: usize) -> ExecRequest {
        ExecRequest {
            lowers: (0..lowers)
                .map(|i| Lower::Dir(dir.join(format!("snap{i}"))))
                .collect(),
            run_dir: dir.join("run"),
            args: vec![],
            env: vec![],
            cwd: "/".into(),
            network: NetworkMode::None,
            security: SecurityMode::Sandbox,
            files: vec![],
        }
    }

    /// Few layers: one mount, the snapshots themselves as lowers (no link per layer).
    #[test]
    fn few_layers_are_one_mount_top_first() {
        let dir = tempfile::tempdir().unwrap();
        let mounts = prepare(&request(dir.path(), 3)).unwrap();
        assert_eq!(mounts.len(), 1);
        let snap = |i: usize| Lower::Dir(dir.path().join(format!("snap{i}")));
        assert_eq!(mounts[0].lowers, [snap(2), snap(1), snap(0)]);
        assert!(mounts[0].options.starts_with("upperdir="));
        assert!(!dir.path().join("run/l").exists(), "no links made");
    }

    /// Images are file systems of their own: the overlay then maps devices and inodes (xino),
    /// snapshot directories alone mount as before.
    #[test]
    fn an_image_lower_turns_xino_to_auto() {
        let dir = tempfile::tempdir().unwrap();
        let mut with_image = request(dir.path(), 2);
        with_image.lowers[1] = Lower::Image(dir.path().join("snap1.erofs"));
        let mounts = prepare(&with_image).unwrap();
        assert!(
            mounts[0].options.ends_with(",xino=auto"),
            "{}",
            mounts[0].options
        );
        assert_eq!(mounts[0].lowers[0], with_image.lowers[1]);
        let mounts = prepare(&request(dir.path(), 2)).unwrap();
        assert!(!mounts[0].options.contains("xino"), "{}", mounts[0].options);
        let mut many = request(dir.path(), 401);
        many.lowers[0] = Lower::Image(dir.path().join("first.erofs"));
        let mounts = prepare(&many).unwrap();
        assert_eq!(
            mounts[0].options, "xino=auto",
            "the group holding the image"
        );
        assert!(mounts[1].options.ends_with(",xino=auto"));
    }

    #[test]
    fn many_layers_respect_the_kernel_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mounts = prepare(&request(dir.path(), 1001)).unwrap();
        // 1001 = 400 + 400 + 201: three groups, then the step's mount over them.
        assert_eq!(mounts.len(), 4);
        let l = dir.path().join("run/l");
        assert_eq!(mounts[0].target, l.join("_0"));
        assert_eq!(mounts[0].lowers[0], Lower::Dir(dir.path().join("snap399")));
        let dirs = |names: &[&str]| {
            names
                .iter()
                .map(|n| Lower::Dir(l.join(n)))
                .collect::<Vec<_>>()
        };
        assert_eq!(mounts[3].lowers, dirs(&["_2", "_1", "_0"]));
        for m in &mounts {
            assert!(m.lowers.len() <= MAX_LOWERS_PER_MOUNT);
        }
        // The only entries made are the groups' mount points.
        let made = std::fs::read_dir(&l).unwrap().count();
        assert_eq!(made, 3);
        // A lone layer left over is used directly, not wrapped in a mount.
        let mounts = prepare(&request(&dir.path().join("b"), 401)).unwrap();
        assert_eq!(mounts.len(), 2);
        let b = dir.path().join("b");
        assert_eq!(
            mounts[1].lowers,
            [
                Lower::Dir(b.join("snap400")),
                Lower::Dir(b.join("run/l/_0"))
            ]
        );
    }

    /// Older kernels: short unique names, a link each, uppermost first.
    #[test]
    fn legacy_lowers_are_short_links() {
        assert_eq!(short_name(0), "0");
        assert_eq!(short_name(35), "z");
        assert_eq!(short_name(36), "10");
        let all: std::collections::BTreeSet<String> = (0..2000).map(short_name).collect();
        assert_eq!(all.len(), 2000);
        let dir = tempfile::tempdir().unwrap();
        let lowers: Vec<PathBuf> = (0..400).map(|i| dir.path().join(format!("s{i}"))).collect();
        let links = dir.path().join("merged.l");
        let option = legacy_lowerdir(&lowers, &links).unwrap();
        assert!(option.starts_with("lowerdir=0:1:2:"), "{option}");
        assert!(option.len() < 2000);
        assert_eq!(std::fs::read_link(links.join("10")).unwrap(), lowers[36]);
    }

    #[test]
    fn no_layers_mount_an_empty_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mounts = prepare(&request(dir.path(), 0)).unwrap();
        assert_eq!(mounts[0].lowers, [Lower::Dir(dir.path().join("run/l/e"))]);
        assert!(dir.path().join("run/l/e").is_dir());
    }
}
