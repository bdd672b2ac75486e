//! Executors: who runs a RUN step. One trait, one implementation per `--mode`.
//!
//! Every executor sees the same request: the step's rootfs as overlay lowerdirs (bottom to
//! top), a fresh upper dir that becomes the step's layer, the command, its environment and
//! working directory. The overlay is mounted inside a private mount namespace created for the
//! step (`unshare --mount`), so host mounts are never changed and the mount disappears with the
//! step's processes — on success, on failure and on cancellation. The step also gets its own
//! PID namespace whose init dies with seal (parent-death signal + `--kill-child`), so not even
//! a SIGKILL of seal leaves a process of the step running.
//!
//! - [`lite`]: host tools, working directory = the merged rootfs, `<rootfs>/bin` on PATH.
//! - [`container`]: runc with a generated OCI runtime config; the merged rootfs is `/`.
//!
//! Executors block; the solver calls them on a blocking thread.

pub mod container;
pub mod lite;
mod process;

use std::path::PathBuf;

use seal_solver::ExecContext;

use crate::EngineError;

/// What to run and on which filesystem.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// Snapshot directories of the rootfs layers, bottom to top (may be empty).
    pub lowers: Vec<PathBuf>,
    /// A private directory for this run: `upper/`, `work/`, `merged/` and scratch files live here.
    pub run_dir: PathBuf,
    pub args: Vec<String>,
    /// `NAME=VALUE` pairs visible to the command.
    pub env: Vec<(String, String)>,
    /// Working directory inside the rootfs (absolute, e.g. `/`).
    pub cwd: String,
    /// Share the host's network (container mode); lite mode always does.
    pub host_network: bool,
}

impl ExecRequest {
    /// The overlay upper directory: the step's changes.
    pub fn upper(&self) -> PathBuf {
        self.run_dir.join("upper")
    }

    /// The merged view.
    pub fn merged(&self) -> PathBuf {
        self.run_dir.join("merged")
    }

    /// The overlay work directory.
    pub fn work(&self) -> PathBuf {
        self.run_dir.join("work")
    }

    /// The overlay mount options for this request.
    pub fn overlay_options(&self) -> Result<String, EngineError> {
        let mut lowers: Vec<String> = Vec::new();
        for dir in self.lowers.iter().rev() {
            let s = dir
                .to_str()
                .ok_or_else(|| EngineError::NonUtf8Path { path: dir.clone() })?;
            if s.contains([':', ',']) {
                return Err(EngineError::Spawn {
                    what: "the overlay mount".into(),
                    reason: format!(
                        "snapshot path {s} contains `:` or `,`; use a store path without them"
                    ),
                });
            }
            lowers.push(s.to_string());
        }
        if lowers.is_empty() {
            lowers.push(self.run_dir.join("empty").display().to_string());
        }
        Ok(format!(
            "lowerdir={},upperdir={},workdir={},redirect_dir=off,metacopy=off,index=off",
            lowers.join(":"),
            self.upper().display(),
            self.work().display()
        ))
    }
}

/// Runs RUN steps.
pub trait Executor {
    /// Run the request to completion; `Ok` only when the command exited 0.
    fn run(&self, request: &ExecRequest, cx: &ExecContext) -> Result<(), EngineError>;
}
