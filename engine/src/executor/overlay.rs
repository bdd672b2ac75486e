//! The overlay mounts of one step. The kernel reads mount options from one page, so lowerdirs
//! are short links (`l/0`, `l/1`, ... to the snapshot directories, as Docker's overlay2 does)
//! named relative to `l/`; past [`MAX_LOWERS_PER_MOUNT`] layers (overlayfs stacks at most 500),
//! the layers are grouped bottom-up into read-only overlays that become the lowers of the
//! step's overlay (one level of nesting, which overlayfs allows on a store that is not itself
//! on overlayfs).

use std::path::{Path, PathBuf};

use crate::executor::ExecRequest;
use crate::EngineError;

/// Lowers of one overlay mount: under overlayfs' limit of 500, with room to spare.
pub const MAX_LOWERS_PER_MOUNT: usize = 400;

/// One `mount -t overlay` to run with `l/` as the working directory, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayMount {
    /// The `-o` options.
    pub options: String,
    /// Where to mount: relative to `l/` (a group) or absolute (the step's merged dir).
    pub target: String,
}

/// Create the `l/` links for `request` and return the mounts that build its merged rootfs.
pub fn prepare(request: &ExecRequest) -> Result<Vec<OverlayMount>, EngineError> {
    let links = request.run_dir.join("l");
    std::fs::create_dir_all(&links).map_err(|e| EngineError::io("creating", &links, e))?;
    let mut names = Vec::with_capacity(request.lowers.len());
    for (i, lower) in request.lowers.iter().enumerate() {
        let name = short_name(i);
        let link = links.join(&name);
        std::os::unix::fs::symlink(lower, &link)
            .map_err(|e| EngineError::io("linking a layer at", &link, e))?;
        names.push(name);
    }
    if names.is_empty() {
        let empty = links.join("e");
        std::fs::create_dir_all(&empty).map_err(|e| EngineError::io("creating", &empty, e))?;
        names.push("e".into());
    }
    let mut mounts = Vec::new();
    // Group bottom-up until one mount can take what is left.
    while names.len() > MAX_LOWERS_PER_MOUNT {
        let mut grouped = Vec::new();
        for chunk in names.chunks(MAX_LOWERS_PER_MOUNT) {
            if chunk.len() == 1 {
                grouped.push(chunk[0].clone());
                continue;
            }
            let target = format!("_{}", mounts.len());
            let dir = links.join(&target);
            std::fs::create_dir_all(&dir).map_err(|e| EngineError::io("creating", &dir, e))?;
            mounts.push(OverlayMount {
                options: format!("lowerdir={}", top_first(chunk)),
                target: target.clone(),
            });
            grouped.push(target);
        }
        names = grouped;
    }
    mounts.push(OverlayMount {
        options: format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off,index=off",
            top_first(&names),
            utf8(&request.upper())?,
            utf8(&request.work())?
        ),
        target: utf8(&request.merged())?,
    });
    Ok(mounts)
}

/// `0`, `1`, ... `z`, `10`, ...: base 36, so 1,296 layers take two characters. Group mounts
/// are named `_N`, which no link name can be.
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

/// overlayfs wants the uppermost lower first.
fn top_first(bottom_up: &[String]) -> String {
    bottom_up
        .iter()
        .rev()
        .cloned()
        .collect::<Vec<_>>()
        .join(":")
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
            lowers: (0..lowers).map(|i| dir.join(format!("snap{i}"))).collect(),
            run_dir: dir.join("run"),
            args: vec![],
            env: vec![],
            cwd: "/".into(),
            network: NetworkMode::None,
            security: SecurityMode::Sandbox,
            files: vec![],
        }
    }

    #[test]
    fn names_are_short_and_unique() {
        assert_eq!(short_name(0), "0");
        assert_eq!(short_name(35), "z");
        assert_eq!(short_name(36), "10");
        let all: std::collections::BTreeSet<String> = (0..2000).map(short_name).collect();
        assert_eq!(all.len(), 2000);
    }

    #[test]
    fn few_layers_are_one_mount_top_first() {
        let dir = tempfile::tempdir().unwrap();
        let mounts = prepare(&request(dir.path(), 3)).unwrap();
        assert_eq!(mounts.len(), 1);
        assert!(mounts[0].options.starts_with("lowerdir=2:1:0,upperdir="));
        let link = dir.path().join("run/l/1");
        assert_eq!(std::fs::read_link(link).unwrap(), dir.path().join("snap1"));
    }

    #[test]
    fn many_layers_fit_one_page_and_the_kernel_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mounts = prepare(&request(dir.path(), 1001)).unwrap();
        // 1001 = 400 + 400 + 201: three groups, then the step's mount over them.
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[0].target, "_0");
        assert!(mounts[3].options.starts_with("lowerdir=_2:_1:_0,"));
        for m in &mounts {
            assert!(m.options.len() < 4000, "{} bytes", m.options.len());
            let lowers = m.options.split(',').next().unwrap().split(':').count();
            assert!(lowers <= MAX_LOWERS_PER_MOUNT);
        }
        // A lone layer left over is used directly, not wrapped in a mount.
        let mounts = prepare(&request(&dir.path().join("b"), 401)).unwrap();
        assert_eq!(mounts.len(), 2);
        assert!(mounts[1].options.starts_with("lowerdir=b4:_0,"));
    }

    #[test]
    fn no_layers_mount_an_empty_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mounts = prepare(&request(dir.path(), 0)).unwrap();
        assert!(mounts[0].options.starts_with("lowerdir=e,"));
        assert!(dir.path().join("run/l/e").is_dir());
    }
}
