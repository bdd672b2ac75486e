//! `--mode lite`: host tools run with the working directory set to the step's rootfs.
//!
//! The command sees the host's `/`, so absolute paths reach the host; relative paths land in the
//! rootfs, whose `bin/` is appended to PATH. This is Sealer's lite build: fast and unisolated.

use seal_solver::ExecContext;

use crate::executor::process::run_in_overlay;
use crate::executor::{ExecRequest, Executor};
use crate::EngineError;

/// The PATH a step starts from when its environment sets none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs steps with host tools.
pub struct LiteExecutor;

impl Executor for LiteExecutor {
    fn run(&self, request: &ExecRequest, cx: &ExecContext) -> Result<(), EngineError> {
        let merged = request.merged();
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
        env.push(("PATH".into(), format!("{path}:{}/bin", merged.display())));
        if !env.iter().any(|(k, _)| k == "HOME") {
            env.push(("HOME".into(), "/root".into()));
        }
        let rel = request.cwd.trim_start_matches('/');
        let cwd = if rel.is_empty() {
            merged.display().to_string()
        } else {
            merged.join(rel).display().to_string()
        };
        run_in_overlay(request, &request.args, &cwd, &env, cx)
    }
}
