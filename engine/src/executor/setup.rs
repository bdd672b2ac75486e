//! A step's namespace prepared in one process: the `seal` binary, started by `unshare` inside
//! the step's new namespaces as `<seal> `[`HELPER_ARG`]` <ops> -- <command>`, mounts the
//! rootfs overlay (through the mount API, one `lowerdir+` per layer) and (lite) the read-only
//! host, private `/tmp`, `$HOME`, ... with one `mount(2)` each, enters the working directory
//! and `exec`s the command. It replaces a `/bin/sh` script that started one `/bin/mount`
//! process per mount (issue 15).
//!
//! The command sees what it saw under the script: its environment with `PWD` set to the
//! working directory (and no `OLDPWD`), exit code 125 and a `seal: preparing the step: ...`
//! line when a mount fails, 127 when the command is not found, 126 when it cannot run.

use std::ffi::{CString, OsString};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use rustix::mount::MountFlags;

use crate::executor::{overlay, read_only, Lower};

/// The first argument that makes the `seal` binary run [`helper_main`].
pub const HELPER_ARG: &str = "__seal-step-setup";

/// Exit code when the step's namespace cannot be prepared.
pub const SETUP_FAILED: i32 = 125;

/// How the helper's own error lines start.
pub const SETUP_MARK: &str = "seal: preparing the step";

/// Where the operations end and the command starts.
const END: &str = "--";

/// One thing the helper does, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `chdir` (relative mount targets and sources are resolved from here).
    Chdir(PathBuf),
    /// `mount -t <fstype> <fstype> -o <options> <target>`; `nosuid`, `nodev`, `noexec` and `ro`
    /// of `options` become mount flags, the rest the file system's data. With `if_dir`, a
    /// target that is not a directory is skipped.
    Mount {
        fstype: String,
        options: String,
        target: PathBuf,
        if_dir: bool,
    },
    /// Every mount but `/proc` and `keep` remounted read-only (`read_only.rs`).
    ReadOnlyHost { keep: PathBuf },
    /// An overlay of `lowers` (uppermost first, each given to the kernel on its own as
    /// `lowerdir+`: no option page to fit, no link per layer; an EROFS image mounted first,
    /// detached, and passed as `/proc/self/fd/<n>`) with `options` (`key=value`,
    /// comma-separated), mounted at `target`; read-only when there is no `upperdir`.
    Overlay {
        lowers: Vec<Lower>,
        options: String,
        target: PathBuf,
    },
    /// The type, mode and owner of each of `paths` (relative) under `root`, as lines
    /// `<path>\t<st_mode octal>\t<uid>\t<gid>` in the new file `out` (absent paths: no line):
    /// what the rootfs had before the command ran ([`read_probe`]).
    Probe {
        root: PathBuf,
        paths: Vec<String>,
        out: PathBuf,
    },
    /// `mount --bind <source> <target>`, then remounted read-only when `read_only`.
    Bind {
        source: PathBuf,
        target: PathBuf,
        read_only: bool,
    },
}

impl Op {
    /// The helper's arguments for this operation.
    fn push_args(&self, out: &mut Vec<OsString>) {
        match self {
            Op::Chdir(dir) => out.extend(["cd".into(), dir.into()]),
            Op::Mount {
                fstype,
                options,
                target,
                if_dir,
            } => out.extend([
                if *if_dir { "mount-if-dir" } else { "mount" }.into(),
                fstype.into(),
                options.into(),
                target.into(),
            ]),
            Op::ReadOnlyHost { keep } => out.extend(["read-only".into(), keep.into()]),
            Op::Overlay {
                lowers,
                options,
                target,
            } => {
                out.extend([
                    "overlay".into(),
                    options.into(),
                    target.into(),
                    lowers.len().to_string().into(),
                ]);
                for lower in lowers {
                    let (kind, path) = match lower {
                        Lower::Dir(path) => ("dir", path),
                        Lower::Image(path) => ("image", path),
                    };
                    out.extend([kind.into(), path.into()]);
                }
            }
            Op::Probe {
                root,
                paths,
                out: file,
            } => {
                out.extend([
                    "probe".into(),
                    root.into(),
                    file.into(),
                    paths.len().to_string().into(),
                ]);
                out.extend(paths.iter().map(OsString::from));
            }
            Op::Bind {
                source,
                target,
                read_only,
            } => out.extend([
                if *read_only { "bind-ro" } else { "bind" }.into(),
                source.into(),
                target.into(),
            ]),
        }
    }

    /// What the operation does, for its error message.
    fn describe(&self) -> String {
        match self {
            Op::Chdir(dir) => format!("entering {}", dir.display()),
            Op::Mount { fstype, target, .. } => {
                format!("mounting {fstype} at {}", target.display())
            }
            Op::ReadOnlyHost { .. } => "making the host read-only".into(),
            Op::Overlay { lowers, target, .. } => format!(
                "mounting the overlay of {} layers at {}",
                lowers.len(),
                target.display()
            ),
            Op::Bind { source, target, .. } => {
                format!("binding {} at {}", source.display(), target.display())
            }
            Op::Probe { root, .. } => format!("looking at the rootfs at {}", root.display()),
        }
    }

    fn apply(&self) -> std::io::Result<()> {
        match self {
            Op::Chdir(dir) => std::env::set_current_dir(dir),
            Op::Mount {
                fstype,
                options,
                target,
                if_dir,
            } => {
                if *if_dir && !target.is_dir() {
                    return Ok(());
                }
                let (flags, data) = split_options(options);
                let data = CString::new(data).map_err(std::io::Error::other)?;
                rustix::mount::mount(
                    fstype.as_str(),
                    target,
                    fstype.as_str(),
                    flags,
                    data.as_c_str(),
                )
                .map_err(std::io::Error::from)
            }
            Op::ReadOnlyHost { keep } => read_only::make_host_read_only(keep),
            Op::Overlay {
                lowers,
                options,
                target,
            } => mount_overlay(lowers, options, target),
            Op::Probe { root, paths, out } => probe(root, paths, out),
            Op::Bind {
                source,
                target,
                read_only,
            } => {
                rustix::mount::mount_bind(source, target)?;
                if *read_only {
                    rustix::mount::mount_remount(
                        target,
                        MountFlags::BIND | MountFlags::RDONLY,
                        "",
                    )?;
                }
                Ok(())
            }
        }
    }
}

/// The arguments after the program that run `ops` then `command`.
pub fn helper_args(ops: &[Op], command: &[String]) -> Vec<OsString> {
    let mut out = vec![OsString::from(HELPER_ARG)];
    for op in ops {
        op.push_args(&mut out);
    }
    out.push(END.into());
    out.extend(command.iter().map(OsString::from));
    out
}

/// The operations and the command of the helper's arguments (after [`HELPER_ARG`]).
fn parse(args: &[OsString]) -> Result<(Vec<Op>, Vec<OsString>), String> {
    let mut ops = Vec::new();
    let mut rest = args.iter();
    let mut next = |what: &str| {
        rest.next()
            .cloned()
            .ok_or_else(|| format!("missing {what}"))
    };
    loop {
        let word = next("`--` before the command")?;
        let op = match word.to_str() {
            Some(END) => break,
            Some("cd") => Op::Chdir(next("the directory")?.into()),
            Some(kind @ ("mount" | "mount-if-dir")) => Op::Mount {
                if_dir: kind == "mount-if-dir",
                fstype: utf8(next("the file system type")?)?,
                options: utf8(next("the mount options")?)?,
                target: next("the mount point")?.into(),
            },
            Some("overlay") => {
                let options = utf8(next("the overlay options")?)?;
                let target = next("the mount point")?.into();
                let count: usize = utf8(next("the number of lowers")?)?
                    .parse()
                    .map_err(|e| format!("the number of lowers: {e}"))?;
                let lowers = (0..count)
                    .map(|_| {
                        let kind = next("a lower's kind")?;
                        let path = PathBuf::from(next("a lower")?);
                        match kind.to_str() {
                            Some("dir") => Ok(Lower::Dir(path)),
                            Some("image") => Ok(Lower::Image(path)),
                            _ => Err(format!("unknown kind of lower {kind:?}")),
                        }
                    })
                    .collect::<Result<_, _>>()?;
                Op::Overlay {
                    lowers,
                    options,
                    target,
                }
            }
            Some("probe") => {
                let root = next("the rootfs")?.into();
                let out = next("the output file")?.into();
                let count: usize = utf8(next("the number of paths")?)?
                    .parse()
                    .map_err(|e| format!("the number of paths: {e}"))?;
                let paths = (0..count)
                    .map(|_| next("a path").and_then(utf8))
                    .collect::<Result<_, _>>()?;
                Op::Probe { root, paths, out }
            }
            Some("read-only") => Op::ReadOnlyHost {
                keep: next("the writable mount")?.into(),
            },
            Some(kind @ ("bind" | "bind-ro")) => Op::Bind {
                read_only: kind == "bind-ro",
                source: next("the bind source")?.into(),
                target: next("the bind target")?.into(),
            },
            _ => return Err(format!("unknown operation {word:?}")),
        };
        ops.push(op);
    }
    let command: Vec<OsString> = rest.cloned().collect();
    if command.is_empty() {
        return Err("no command".into());
    }
    Ok((ops, command))
}

/// An overlay through the mount API (`fsopen`, one `fsconfig` per lower and option, `fsmount`,
/// `move_mount`), as [`Op::Overlay`] describes it. A kernel without the API or without
/// `lowerdir+` (before 6.8: Debian 12's 6.1) gets short links and one `lowerdir=` option
/// instead ([`overlay::legacy_lowerdir`]).
fn mount_overlay(lowers: &[Lower], options: &str, target: &Path) -> std::io::Result<()> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
        FsMountFlags, FsOpenFlags, MountAttrFlags, MoveMountFlags,
    };
    // The images' detached mounts live as long as these fds: until the overlay holds them.
    let mut images = Vec::new();
    let mut paths = Vec::with_capacity(lowers.len());
    for lower in lowers {
        match lower {
            Lower::Dir(path) => paths.push(path.clone()),
            Lower::Image(image) => {
                let mount = mount_image(image).map_err(|e| {
                    std::io::Error::new(
                        e.kind(),
                        format!("mounting the snapshot image {}: {e}", image.display()),
                    )
                })?;
                paths.push(PathBuf::from(format!(
                    "/proc/self/fd/{}",
                    mount.as_raw_fd()
                )));
                images.push(mount);
            }
        }
    }
    let lowers = paths.as_slice();
    let fs = match fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fs) => fs,
        Err(_) => return mount_overlay_with_links(lowers, options, target),
    };
    for (i, lower) in lowers.iter().enumerate() {
        match fsconfig_set_string(&fs, "lowerdir+", lower) {
            Ok(()) => {}
            // An unknown parameter: an older kernel.
            Err(rustix::io::Errno::INVAL) if i == 0 => {
                return mount_overlay_with_links(lowers, options, target)
            }
            Err(e) => return Err(e.into()),
        }
    }
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option.split_once('=') {
            Some((key, value)) => fsconfig_set_string(&fs, key, value)?,
            None => fsconfig_set_flag(&fs, option)?,
        }
    }
    fsconfig_create(&fs)?;
    let mount = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, MountAttrFlags::empty())?;
    move_mount(
        &mount,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    drop(images);
    Ok(())
}

/// An EROFS image mounted read-only from its file (Linux 6.12's file-backed mounts), detached:
/// nothing appears in the mount table, and the mount goes when the fd and every mount using
/// it are gone.
pub fn mount_image(image: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use rustix::mount::{
        fsconfig_create, fsconfig_set_string, fsmount, fsopen, FsMountFlags, FsOpenFlags,
        MountAttrFlags,
    };
    let fs = fsopen("erofs", FsOpenFlags::FSOPEN_CLOEXEC)?;
    fsconfig_set_string(&fs, "source", image)?;
    fsconfig_create(&fs)?;
    Ok(fsmount(
        &fs,
        FsMountFlags::FSMOUNT_CLOEXEC,
        MountAttrFlags::MOUNT_ATTR_RDONLY,
    )?)
}

/// [`Op::Probe`]: one line per path that exists under `root`.
pub(crate) fn probe(root: &Path, paths: &[String], out: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut text = String::new();
    for path in paths {
        if let Ok(meta) = std::fs::symlink_metadata(root.join(path)) {
            text.push_str(&format!(
                "{path}\t{:o}\t{}\t{}\n",
                meta.mode(),
                meta.uid(),
                meta.gid()
            ));
        }
    }
    std::fs::write(out, text)
}

/// What an [`Op::Probe`] found: `st_mode`, uid and gid by path.
pub fn read_probe(out: &Path) -> std::io::Result<std::collections::HashMap<String, [u32; 3]>> {
    let text = std::fs::read_to_string(out)?;
    let mut found = std::collections::HashMap::new();
    for line in text.lines() {
        let mut fields = line.split('\t');
        let (Some(path), Some(mode), Some(uid), Some(gid)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let mode = u32::from_str_radix(mode, 8).ok();
        if let (Some(mode), Ok(uid), Ok(gid)) = (mode, uid.parse(), gid.parse()) {
            found.insert(path.to_string(), [mode, uid, gid]);
        }
    }
    Ok(found)
}

/// The overlay with `mount(2)`: the lowers as short links in a directory beside `target`, so
/// the one-page option string holds 400 of them.
fn mount_overlay_with_links(
    lowers: &[PathBuf],
    options: &str,
    target: &Path,
) -> std::io::Result<()> {
    let mut links = target.as_os_str().to_owned();
    links.push(".l");
    let links = PathBuf::from(links);
    let lowerdir = overlay::legacy_lowerdir(lowers, &links)?;
    let data = match options.is_empty() {
        true => lowerdir,
        false => format!("{lowerdir},{options}"),
    };
    let data = CString::new(data).map_err(std::io::Error::other)?;
    let back = std::env::current_dir()?;
    // The links' names are relative to their directory, which the kernel resolves from here.
    std::env::set_current_dir(&links)?;
    let mounted = rustix::mount::mount(
        "overlay",
        target,
        "overlay",
        MountFlags::empty(),
        data.as_c_str(),
    );
    std::env::set_current_dir(back)?;
    Ok(mounted?)
}

fn utf8(s: OsString) -> Result<String, String> {
    s.into_string().map_err(|s| format!("not UTF-8: {s:?}"))
}

/// `mount -o` options split into the flags `mount(8)` would pass and the file system's data.
fn split_options(options: &str) -> (MountFlags, String) {
    let mut flags = MountFlags::empty();
    let mut data = Vec::new();
    for option in options.split(',').filter(|o| !o.is_empty()) {
        match option {
            "nosuid" => flags |= MountFlags::NOSUID,
            "nodev" => flags |= MountFlags::NODEV,
            "noexec" => flags |= MountFlags::NOEXEC,
            "ro" => flags |= MountFlags::RDONLY,
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// Run the helper when `args` (the process's, program name first) ask for it: on success it
/// does not return (the command replaces it); else `Some(exit code)`. `None`: not the helper.
pub fn helper_main(args: &[OsString]) -> Option<i32> {
    if args.get(1).is_none_or(|a| a != HELPER_ARG) {
        return None;
    }
    let (ops, command) = match parse(&args[2..]) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("{SETUP_MARK}: {HELPER_ARG}: {e}");
            return Some(SETUP_FAILED);
        }
    };
    for op in &ops {
        if let Err(e) = op.apply() {
            eprintln!("{SETUP_MARK}: {}: {e}", op.describe());
            return Some(SETUP_FAILED);
        }
    }
    Some(exec(&command))
}

/// Replace this process with `command` (looked up in the step's `PATH`), as the script's
/// `cd <cwd>; unset OLDPWD; exec "$@"` did: `PWD` is the working directory. Returns the exit
/// code when it cannot.
fn exec(command: &[OsString]) -> i32 {
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut cmd = std::process::Command::new(&command[0]);
    cmd.args(&command[1..])
        .env_remove("OLDPWD")
        .env("PWD", &cwd);
    let e = cmd.exec();
    eprintln!("{}: {e}", Path::new(&command[0]).display());
    if e.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn operations_survive_their_arguments() {
        let ops = vec![
            Op::Chdir("/run/x/l".into()),
            Op::Overlay {
                lowers: vec![
                    Lower::Image("/s/b.erofs".into()),
                    Lower::Dir("/s/a c".into()),
                ],
                options: "upperdir=/u,workdir=/w".into(),
                target: "/run/x/merged".into(),
            },
            Op::Overlay {
                lowers: vec![],
                options: String::new(),
                target: "/g".into(),
            },
            Op::ReadOnlyHost {
                keep: "/run/x/merged".into(),
            },
            Op::Bind {
                source: "/a b".into(),
                target: "/c".into(),
                read_only: true,
            },
            Op::Mount {
                fstype: "tmpfs".into(),
                options: "mode=1777,nosuid,nodev".into(),
                target: "/dev/shm".into(),
                if_dir: true,
            },
            Op::Probe {
                root: "/m".into(),
                paths: vec!["etc/hosts".into(), "dev".into()],
                out: "/r/probe".into(),
            },
        ];
        let command = vec!["/bin/sh".to_string(), "-c".into(), "-- echo".into()];
        let all = helper_args(&ops, &command);
        assert_eq!(all[0], HELPER_ARG);
        let (got_ops, got_command) = parse(&all[1..]).unwrap();
        assert_eq!(got_ops, ops);
        assert_eq!(got_command, args(&["/bin/sh", "-c", "-- echo"]));
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(parse(&args(&["cd"])).unwrap_err().contains("missing"));
        assert!(parse(&args(&["umount", "/x", "--", "true"]))
            .unwrap_err()
            .contains("unknown operation"));
        assert!(parse(&args(&["cd", "/"])).unwrap_err().contains("`--`"));
        assert!(parse(&args(&["overlay", "", "/m", "x", "--", "true"]))
            .unwrap_err()
            .contains("number of lowers"));
        assert!(parse(&args(&["overlay", "", "/m", "2", "dir", "/a"]))
            .unwrap_err()
            .contains("missing"));
        assert!(parse(&args(&[
            "overlay", "", "/m", "1", "file", "/a", "--", "true"
        ]))
        .unwrap_err()
        .contains("unknown kind"));
        assert_eq!(parse(&args(&["--"])).unwrap_err(), "no command");
        let code = helper_main(&args(&["seal", HELPER_ARG, "cd"]));
        assert_eq!(code, Some(SETUP_FAILED));
        assert_eq!(helper_main(&args(&["seal", "build"])), None);
    }

    /// A probe lists what exists, with its type and owner, and nothing for what does not.
    #[test]
    fn a_probe_reads_back_what_it_found() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hosts"), "x").unwrap();
        std::fs::set_permissions(root.join("etc"), std::fs::Permissions::from_mode(0o750)).unwrap();
        let out = dir.path().join("probe");
        let paths = ["etc".to_string(), "etc/hosts".into(), "proc".into()];
        probe(&root, &paths, &out).unwrap();
        let found = read_probe(&out).unwrap();
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found["etc"][0], 0o040750);
        assert_eq!(found["etc/hosts"][0] & 0o170000, 0o100000);
        assert_eq!(found["etc"][1], rustix::process::geteuid().as_raw());
    }

    #[test]
    fn flags_are_split_from_data() {
        let (flags, data) = split_options("mode=1777,nosuid,nodev");
        assert_eq!(flags, MountFlags::NOSUID | MountFlags::NODEV);
        assert_eq!(data, "mode=1777");
        let (flags, data) = split_options("lowerdir=a:b,upperdir=/u,ro,noexec");
        assert_eq!(flags, MountFlags::RDONLY | MountFlags::NOEXEC);
        assert_eq!(data, "lowerdir=a:b,upperdir=/u");
    }

    /// A failed operation stops the setup with its own message (a mount point that does not
    /// exist: the same error as root or not).
    #[test]
    fn a_failing_operation_is_reported() {
        let missing = "/nonexistent/seal-setup-test";
        let code = helper_main(&args(&["seal", HELPER_ARG, "cd", missing, "--", "true"]));
        assert_eq!(code, Some(SETUP_FAILED));
    }
}
