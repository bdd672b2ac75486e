//! A lite step's host made read-only in one process: every mount of the step's mount namespace
//! is remounted `ro` (keeping its `nosuid`, `nodev` and `noexec`) with one `mount(2)` each,
//! instead of one `/bin/mount` process per mount point (issue 15: 26 processes, ~120 ms of a
//! RUN that otherwise took ~130 ms).
//!
//! The step's setup helper (`setup.rs`) runs it inside the step's namespace. `/proc` (the
//! step's own) and the rootfs overlay stay writable.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use rustix::mount::MountFlags;

/// Remount every mount of this mount namespace but `/proc` and `keep` read-only. Failing to
/// make `/` read-only is an error; any other mount that refuses is left as it is (as
/// `/bin/mount` failing quietly did before).
pub fn make_host_read_only(keep: &Path) -> std::io::Result<()> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    for (mount_point, flags) in read_only_plan(&mountinfo, keep) {
        if let Err(e) = rustix::mount::mount_remount(&mount_point, flags, "") {
            if mount_point == Path::new("/") {
                return Err(e.into());
            }
        }
    }
    Ok(())
}

/// Every mount point of `mountinfo` but `/proc`, what is below it, and `keep`, with the flags
/// that remount it read-only and keep its `nosuid`, `nodev` and `noexec`.
fn read_only_plan(mountinfo: &str, keep: &Path) -> Vec<(PathBuf, MountFlags)> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(mount_point), Some(options)) = (fields.get(4), fields.get(5)) else {
            continue;
        };
        let mount_point = PathBuf::from(unescape(mount_point));
        if mount_point == keep || mount_point.starts_with("/proc") {
            continue;
        }
        let mut flags = MountFlags::BIND | MountFlags::RDONLY;
        for option in options.split(',') {
            flags |= match option {
                "nosuid" => MountFlags::NOSUID,
                "nodev" => MountFlags::NODEV,
                "noexec" => MountFlags::NOEXEC,
                _ => MountFlags::empty(),
            };
        }
        out.push((mount_point, flags));
    }
    out
}

/// mountinfo's octal escapes (`\040` for a space) decoded.
fn unescape(field: &str) -> OsString {
    use std::os::unix::ffi::OsStringExt;
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
                out.push(value as u8);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    OsString::from_vec(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc` and below and the rootfs overlay are left alone; every other mount gets `ro`
    /// plus the `nosuid`/`nodev`/`noexec` it had; escaped mount points are decoded.
    #[test]
    fn every_mount_but_proc_and_the_rootfs_is_planned_read_only() {
        let mountinfo = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
23 22 0:5 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
24 23 0:6 / /proc/sys/fs/binfmt_misc rw,relatime - binfmt_misc x rw
25 22 0:7 / /dev rw,nosuid - devtmpfs udev rw
26 22 0:8 / /mnt/with\\040space rw,nodev,noexec - tmpfs t rw
27 22 0:9 / /tmp/store/tmp/run-1/merged rw - overlay overlay rw
28 22 0:10 / /procfs rw - tmpfs t rw
";
        let plan = read_only_plan(mountinfo, Path::new("/tmp/store/tmp/run-1/merged"));
        let ro = MountFlags::BIND | MountFlags::RDONLY;
        assert_eq!(
            plan,
            [
                (PathBuf::from("/"), ro),
                (PathBuf::from("/dev"), ro | MountFlags::NOSUID),
                (
                    PathBuf::from("/mnt/with space"),
                    ro | MountFlags::NODEV | MountFlags::NOEXEC
                ),
                (PathBuf::from("/procfs"), ro),
            ]
        );
        assert_eq!(unescape(r"a\134b\011"), OsString::from("a\\b\t"));
        assert_eq!(unescape(r"trailing\04"), OsString::from(r"trailing\04"));
    }
}
