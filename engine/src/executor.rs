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
//! - [`lite`]: host tools; the merged rootfs is the working directory at [`lite::ROOTFS`], the
//!   host's `/` is read-only, `/tmp` and `$HOME` are private.
//! - [`container`]: runc with a generated OCI runtime config; the merged rootfs is `/`.
//! - [`remote`]: a Remote Execution API v2 action on another machine; the rootfs is the
//!   action's input root (a Merkle tree, not an overlay), the layer is the output root minus
//!   the input root. It mounts nothing and needs no root.
//!
//! - [`cloud`]: runc on another machine over SSH, with container mode's runtime config; layer
//!   blobs travel by digest, only those the host lacks.
//!
//! Executors block; the solver calls them on a blocking thread.

pub mod cloud;
pub mod container;
pub mod lite;
mod overlay;
mod process;
pub mod read_only;
pub mod remote;
pub mod setup;

use std::path::{Path, PathBuf};

use seal_solver::ExecContext;

use crate::llb::{ExecFile, ExecOp, NetworkMode, SecurityMode};
use crate::EngineError;

pub use overlay::{images_usable, MAX_LOWERS_PER_MOUNT, SNAPSHOT_FORMAT_VAR};

/// What to run and on which filesystem.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// Snapshots of the rootfs layers, bottom to top (may be empty).
    pub lowers: Vec<Lower>,
    /// A private directory for this run: `upper/`, `work/`, `merged/` and scratch files live here.
    pub run_dir: PathBuf,
    pub args: Vec<String>,
    /// `NAME=VALUE` pairs visible to the command.
    pub env: Vec<(String, String)>,
    /// Working directory inside the rootfs (absolute, e.g. `/`).
    pub cwd: String,
    pub network: NetworkMode,
    pub security: SecurityMode,
    /// Read-only files the command finds in [`ExecOp::FILES_DIR`] (container mode) or
    /// [`lite::FILES_DIR`] (lite mode).
    pub files: Vec<ExecFile>,
}

/// One layer's snapshot as an overlay lower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lower {
    /// A directory tree in overlayfs' format (`snapshots/<diffID>/`).
    Dir(PathBuf),
    /// An EROFS image of that tree (`snapshots/<diffID>.erofs`), mounted read-only from the
    /// file inside the step's mount namespace (`layers/snapshot_image.rs`).
    Image(PathBuf),
}

impl Lower {
    /// The directory or image file.
    pub fn path(&self) -> &Path {
        match self {
            Lower::Dir(path) | Lower::Image(path) => path,
        }
    }
}

/// A shell-form command longer than this runs from a script file: one argv string may not
/// exceed 128 KiB (MAX_ARG_STRLEN), and argv + environment share a few MiB.
const SCRIPT_FILE_THRESHOLD: usize = 32 * 1024;

/// The script file a long shell-form command is written to.
const LONG_SCRIPT_NAME: &str = ".seal-run.sh";

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

    /// The directory holding [`ExecRequest::files`] on the host.
    pub fn files_dir(&self) -> PathBuf {
        self.run_dir.join("pipes")
    }

    /// A shell-form command too long for argv becomes a script file run by the same shell.
    pub fn move_long_script_to_file(&mut self) {
        let long = matches!(self.args.as_slice(), [sh, c, script]
            if sh == "/bin/sh" && c == "-c" && script.len() > SCRIPT_FILE_THRESHOLD);
        if !long {
            return;
        }
        let script = std::mem::take(&mut self.args[2]);
        self.files.push(ExecFile {
            name: LONG_SCRIPT_NAME.into(),
            data: script,
            mode: 0o644,
        });
        self.args = vec![
            "/bin/sh".into(),
            format!("{}/{LONG_SCRIPT_NAME}", ExecOp::FILES_DIR),
        ];
    }

    /// Write [`ExecRequest::files`] into [`ExecRequest::files_dir`] (created even when empty).
    fn write_files(&self) -> Result<(), EngineError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.files_dir();
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io("creating", &dir, e))?;
        for file in &self.files {
            if file.name.is_empty() || file.name.contains('/') || file.name.starts_with("..") {
                return Err(EngineError::Internal(format!(
                    "bad RUN file name {:?}",
                    file.name
                )));
            }
            let path = dir.join(&file.name);
            std::fs::write(&path, file.data.as_bytes())
                .map_err(|e| EngineError::io("writing", &path, e))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode & 0o7777))
                .map_err(|e| EngineError::io("setting the mode of", &path, e))?;
        }
        Ok(())
    }
}

/// Runs RUN steps.
pub trait Executor {
    /// Run the request to completion; `Ok` only when the command exited 0.
    fn run(&self, request: &ExecRequest, cx: &ExecContext) -> Result<(), EngineError>;
}

/// RUN steps mount overlays and create namespaces: they need root. The error says so before
/// anything runs (rootless builds through user namespaces are not supported yet).
pub fn check_privileges() -> Result<(), EngineError> {
    if rustix::process::geteuid().is_root() {
        return Ok(());
    }
    Err(EngineError::NeedsRoot {
        reason: format!(
            "seal runs as uid {}, and RUN steps mount overlayfs in their own mount and PID \
             namespaces; run seal as root (e.g. with sudo) — rootless RUN through user \
             namespaces is not supported yet",
            rustix::process::geteuid().as_raw()
        ),
    })
}
