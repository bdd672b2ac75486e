//! One measured build of `seal bench`: a `seal build --progress json` child process, its wall
//! time, its peak memory (`wait4`'s `ru_maxrss`) and what each step did.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// How to start one build: everything but the store.
pub struct BuildCommand {
    /// This `seal` binary.
    pub exe: PathBuf,
    /// Global flags (`--insecure-registry`, `--max-concurrent-transfers`).
    pub globals: Vec<OsString>,
    /// `build` flags (`-f`, `--build-arg`, `--build-mode`).
    pub build_flags: Vec<OsString>,
    pub context: PathBuf,
}

/// What one Kubefile step did in one build.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRun {
    /// As progress shows it: `[2/3] COPY dir1 a`.
    pub name: String,
    /// Seconds it executed; `None` when it was cached.
    pub elapsed: Option<f64>,
}

/// One build's measurements.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub seconds: f64,
    pub peak_rss_kib: u64,
    /// In the order the build reported them.
    pub steps: Vec<StepRun>,
}

/// The tag every bench build gets (in the scratch store only).
const TAG: &str = "seal-bench:latest";

impl BuildCommand {
    /// Build once against the store at `root`; an error carries the build's own report.
    pub fn run(&self, root: &Path) -> Result<RunResult, String> {
        // Dirty pages of the previous run are not flushed during this one (as the scenario
        // scripts do).
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
        let started = Instant::now();
        let mut child = Command::new(&self.exe)
            .arg("--root")
            .arg(root)
            .args(&self.globals)
            .args(["build", "--progress", "json", "-t", TAG])
            .args(&self.build_flags)
            .arg(&self.context)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.exe.display()))?;
        let mut stderr = child.stderr.take().ok_or("no stderr pipe")?;
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let (status, rusage) = wait4(child.id())?;
        let seconds = started.elapsed().as_secs_f64();
        let log = reader.join().unwrap_or_default();
        if !status.success {
            let tail: Vec<&str> = log.lines().rev().take(8).collect();
            let tail: Vec<String> = tail.into_iter().rev().map(message_of).collect();
            return Err(format!(
                "the build failed ({}):\n{}",
                status.describe(),
                tail.join("\n")
            ));
        }
        Ok(RunResult {
            seconds,
            peak_rss_kib: rusage,
            steps: steps_of(&log),
        })
    }
}

/// The Kubefile steps of a `--progress json` log, each cached or with its `done` time.
pub fn steps_of(log: &str) -> Vec<StepRun> {
    let mut steps: Vec<StepRun> = Vec::new();
    for line in log.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(name) = event["name"].as_str().filter(|n| n.starts_with('[')) else {
            continue;
        };
        let elapsed = match event["event"].as_str() {
            Some("cached") => None,
            Some("done") => event["elapsed"].as_f64(),
            _ => continue,
        };
        steps.push(StepRun {
            name: name.to_string(),
            elapsed,
        });
    }
    steps
}

/// A JSON event line's message, or the line itself.
fn message_of(line: &str) -> String {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| line.to_string())
}

struct ExitStatus {
    success: bool,
    raw: i32,
}

impl ExitStatus {
    fn describe(&self) -> String {
        if libc::WIFEXITED(self.raw) {
            format!("exit {}", libc::WEXITSTATUS(self.raw))
        } else if libc::WIFSIGNALED(self.raw) {
            format!("signal {}", libc::WTERMSIG(self.raw))
        } else {
            format!("status {}", self.raw)
        }
    }
}

/// Reap `pid` and return its exit status and peak resident set (KiB).
fn wait4(pid: u32) -> Result<(ExitStatus, u64), String> {
    let pid = libc::pid_t::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    let mut raw = 0;
    // SAFETY: rusage is plain data, zero is a valid value for it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live locals of the right types.
        let r = unsafe { libc::wait4(pid, &mut raw, 0, &mut usage) };
        if r == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("waiting for the build: {e}"));
        }
    }
    let success = libc::WIFEXITED(raw) && libc::WEXITSTATUS(raw) == 0;
    Ok((
        ExitStatus { success, raw },
        u64::try_from(usage.ru_maxrss).unwrap_or(0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_come_from_cached_and_done_events() {
        let log = r#"{"event":"started","name":"[1/2] FROM scratch","vertex":1}
{"event":"cached","name":"[1/2] FROM scratch","vertex":1}
{"event":"started","name":"[2/2] COPY a b","vertex":2}
{"event":"log","name":"COLLECT container images","line":"x"}
{"elapsed":0.25,"event":"done","name":"[2/2] COPY a b","vertex":2}
not json
{"event":"summary","message":"built ..."}"#;
        assert_eq!(
            steps_of(log),
            vec![
                StepRun {
                    name: "[1/2] FROM scratch".into(),
                    elapsed: None
                },
                StepRun {
                    name: "[2/2] COPY a b".into(),
                    elapsed: Some(0.25)
                },
            ]
        );
    }
}
