//! Running one step's process tree: a private mount namespace with the overlay mounted (and,
//! for lite steps, the host made read-only around it; both by `setup.rs` in one process),
//! output streamed line by line, cancellation, and no process left behind.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seal_solver::ExecContext;

use crate::executor::setup::{self, Op, SETUP_FAILED, SETUP_MARK};
use crate::executor::{overlay, ExecRequest};
use crate::EngineError;

/// Lines of output kept for the error message of a failed step.
const TAIL_LINES: usize = 20;

/// What the step's mount namespace looks like besides the rootfs overlay.
#[derive(Debug, Clone, Default)]
pub struct Namespace {
    /// What is done after the overlay is mounted, before `exec` (each fails the setup).
    pub setup: Vec<Op>,
    /// A new network namespace (only loopback).
    pub new_network: bool,
}

/// Mount the request's overlay in a new mount namespace, apply `ns`, `cd` to `cwd`, and exec
/// `command`. `env` is the complete environment of the command.
pub fn run_in_overlay(
    request: &ExecRequest,
    ns: &Namespace,
    command: &[String],
    cwd: &str,
    env: &[(String, String)],
    cx: &ExecContext,
) -> Result<(), EngineError> {
    for dir in [request.upper(), request.work(), request.merged()] {
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io("creating", &dir, e))?;
    }
    request.write_files()?;
    let mut ops: Vec<Op> = overlay::prepare(request)?
        .into_iter()
        .map(|m| Op::Overlay {
            lowers: m.lowers,
            options: m.options,
            target: m.target,
        })
        .collect();
    ops.extend(ns.setup.iter().cloned());
    ops.push(Op::Chdir(cwd.into()));
    let seal = std::env::current_exe()
        .map_err(|e| EngineError::io("finding", std::path::Path::new("the seal binary"), e))?;
    let mut cmd = Command::new("/usr/bin/unshare");
    cmd.args(["--mount", "--propagation", "private"]);
    if ns.new_network {
        cmd.arg("--net");
    }
    cmd.args([
        // A PID namespace whose init dies with unshare: when it goes, the kernel kills every
        // process of the step, including ones a shell forked and daemons it left behind.
        "--pid",
        "--fork",
        "--kill-child",
        // /proc of that PID namespace (runc looks its children up there).
        "--mount-proc",
        "--",
    ])
    .arg(&seal)
    .args(setup::helper_args(&ops, command))
    .env_clear()
    .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    // If seal itself dies (SIGKILL, OOM), the step must not outlive it: the kernel sends the
    // step SIGKILL when the thread that spawned it exits. That thread is blocked in the wait
    // loop below for the step's whole life, so only seal's death can trigger it.
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().map_err(|e| EngineError::Spawn {
        what: "unshare (util-linux)".into(),
        reason: e.to_string(),
    })?;
    let pgid = rustix::process::Pid::from_child(&child);
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let readers: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| {
        let (cx, tail) = (cx.clone(), tail.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                cx.log(line.clone());
                if let Ok(mut t) = tail.lock() {
                    if t.len() == TAIL_LINES {
                        t.pop_front();
                    }
                    t.push_back(line);
                }
            }
        })
    })
    .collect();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        if cx.is_cancelled() {
            kill_group(pgid);
            let _ = child.wait();
            for r in readers {
                let _ = r.join();
            }
            return Err(EngineError::Cancelled);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Whatever the step left running in its group goes with it.
    kill_group(pgid);
    for r in readers {
        let _ = r.join();
    }
    let status = status.map_err(|e| EngineError::Spawn {
        what: "the step".into(),
        reason: e.to_string(),
    })?;
    let code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    if code == 0 {
        return Ok(());
    }
    let tail: Vec<String> = tail
        .lock()
        .map(|t| t.iter().cloned().collect())
        .unwrap_or_default();
    if code == SETUP_FAILED && tail.iter().any(|l| l.contains(SETUP_MARK)) {
        // The setup's own messages.
        let reason = tail
            .iter()
            .filter(|l| l.contains(SETUP_MARK) || l.contains("mount"))
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("; ");
        let hint = if reason.contains("Operation not permitted") {
            " (RUN needs root for mount namespaces and overlayfs)"
        } else {
            ""
        };
        return Err(EngineError::Spawn {
            what: "the step's namespace".into(),
            reason: format!("{reason}{hint}"),
        });
    }
    Err(EngineError::RunFailed {
        code,
        tail: tail.join("\n"),
        hint: None,
    })
}

fn kill_group(pgid: rustix::process::Pid) {
    let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
}
