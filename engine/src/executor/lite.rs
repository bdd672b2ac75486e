//! `--mode lite`: host tools run with the working directory set to the step's rootfs.
//!
//! Sealer's lite build, made safe and reproducible: in the step's private mount namespace
//! every host mount is read-only; writable are the rootfs (bound at the fixed path [`ROOTFS`],
//! the working directory of every build), a private `/tmp`, a private `$HOME` and `/dev/shm`.
//! Host tools and the host's network work as usual (`RUN --network=none`: only loopback);
//! `<rootfs>/bin` is appended to PATH. No variable of seal's own environment reaches the step.

use std::path::Path;

use seal_solver::ExecContext;

use crate::executor::process::{run_in_overlay, Namespace};
use crate::executor::setup::Op;
use crate::executor::{ExecRequest, Executor};
use crate::llb::{ExecOp, NetworkMode};
use crate::EngineError;

/// The PATH a step starts from when its environment sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where a lite step sees its rootfs: the same path in every build, so `pwd` is reproducible.
pub const ROOTFS: &str = "/run/seal/rootfs";

/// Where a lite step finds the request's files (what container mode mounts at
/// [`ExecOp::FILES_DIR`]).
pub const FILES_DIR: &str = "/run/seal/pipes";

/// The private home directory of a lite step.
pub const HOME: &str = "/run/seal/home";

/// Runs steps with host tools.
pub struct LiteExecutor;

impl Executor for LiteExecutor {
    fn run(&self, request: &ExecRequest, cx: &ExecContext) -> Result<(), EngineError> {
        // The mount points of the fixed paths, made once on the host (empty directories).
        for dir in [ROOTFS, FILES_DIR, HOME] {
            std::fs::create_dir_all(dir)
                .map_err(|e| EngineError::io("creating", Path::new(dir), e))?;
        }
        let mut env: Vec<(String, String)> = request
            .env
            .iter()
            .filter(|(k, _)| k != "PATH")
            .cloned()
            .collect();
        let path = request
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| DEFAULT_PATH.into());
        env.push(("PATH".into(), format!("{path}:{ROOTFS}/bin")));
        if !env.iter().any(|(k, _)| k == "HOME") {
            env.push(("HOME".into(), HOME.into()));
        }
        let rel = request.cwd.trim_start_matches('/');
        let cwd = if rel.is_empty() {
            ROOTFS.to_string()
        } else {
            format!("{ROOTFS}/{rel}")
        };
        // Container paths of the request's files become the lite ones.
        let container_files = format!("{}/", ExecOp::FILES_DIR);
        let args: Vec<String> = request
            .args
            .iter()
            .map(|a| match a.strip_prefix(&container_files) {
                Some(name) => format!("{FILES_DIR}/{name}"),
                None => a.clone(),
            })
            .collect();
        let ns = Namespace {
            setup: setup_ops(request),
            new_network: request.network == NetworkMode::None,
        };
        run_in_overlay(request, &ns, &args, &cwd, &env, cx).map_err(explain_read_only)
    }
}

/// The namespace around a lite step: every host mount read-only (but `/proc`, which is the
/// step's own), then the rootfs, the files, a private `/tmp`, `$HOME` and `/dev/shm`.
fn setup_ops(request: &ExecRequest) -> Vec<Op> {
    let tmpfs = |options: &str, target: &str, if_dir: bool| Op::Mount {
        fstype: "tmpfs".into(),
        options: options.into(),
        target: target.into(),
        if_dir,
    };
    vec![
        Op::ReadOnlyHost {
            keep: request.merged(),
        },
        Op::Bind {
            source: request.merged(),
            target: ROOTFS.into(),
            read_only: false,
        },
        Op::Bind {
            source: request.files_dir(),
            target: FILES_DIR.into(),
            read_only: true,
        },
        tmpfs("mode=1777,nosuid,nodev", "/tmp", false),
        tmpfs("mode=0700", HOME, false),
        tmpfs("mode=1777,nosuid,nodev", "/dev/shm", true),
    ]
}

/// A failed lite step whose output complains of a read-only file system wrote outside its
/// rootfs: say so, and what to do.
fn explain_read_only(e: EngineError) -> EngineError {
    match e {
        EngineError::RunFailed {
            code,
            tail,
            hint: None,
        } if tail.contains("Read-only file system") => {
            let path = tail
                .lines()
                .find(|l| l.contains("Read-only file system"))
                .and_then(read_only_path);
            let what = match path {
                Some(p) => format!("the step wrote to {p}, outside its rootfs; "),
                None => "the step wrote outside its rootfs; ".into(),
            };
            EngineError::RunFailed {
                code,
                tail,
                hint: Some(format!(
                    "{what}in --mode lite the host's / is read-only: only the rootfs (the \
                     working directory, {ROOTFS}), /tmp and $HOME are writable. Write paths \
                     relative to the working directory, or build with --mode container, where \
                     `/` is the rootfs"
                )),
            }
        }
        other => other,
    }
}

/// The path a "Read-only file system" error line names: the last word before the message,
/// without quotes and colons (`sh: 1: cannot create /etc/x: Read-only ...`, `touch: cannot
/// touch '/etc/x': Read-only ...`).
fn read_only_path(line: &str) -> Option<String> {
    let before = &line[..line.find("Read-only file system")?];
    let word = before.split_whitespace().last()?;
    let path = word.trim_matches(|c: char| c == ':' || c == '\'' || c == '"' || c == '`');
    Some(path.to_string()).filter(|p| p.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_failures_name_the_path_and_the_fix() {
        let e = explain_read_only(EngineError::RunFailed {
            code: 2,
            tail: "sh: 1: cannot create /etc/probe: Read-only file system".into(),
            hint: None,
        });
        let text = e.to_string();
        assert!(text.contains("wrote to /etc/probe"), "{text}");
        assert!(text.contains("--mode container"), "{text}");
        let other = explain_read_only(EngineError::RunFailed {
            code: 1,
            tail: "no such file".into(),
            hint: None,
        });
        assert!(!other.to_string().contains("hint"));
    }
}
