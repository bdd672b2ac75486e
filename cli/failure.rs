//! How a command fails, and the exit code each failure maps to.
//!
//! 0: success; 1: a failed build, a bad Kubefile, or any runtime error; 2: bad command-line
//! usage (clap's own errors use 2 as well); 130: interrupted by Ctrl-C.

use std::process::ExitCode;

/// A command's failure.
#[derive(Debug)]
pub enum Failure {
    /// Bad command-line usage: printed as `error: ...`, exit code 2.
    Usage(String),
    /// Already printed (rendered diagnostics): exit code 1.
    Reported,
    /// Stopped by Ctrl-C: exit code 130, as shells report SIGINT.
    Interrupted,
    /// Anything else: printed with its cause chain, exit code 1.
    Error(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::Error(e.into())
    }
}

impl Failure {
    /// Print (when not yet printed) and pick the exit code.
    pub fn report(self) -> ExitCode {
        match self {
            Failure::Usage(msg) => {
                eprintln!("error: {msg}\n\nFor more information, try '--help'.");
                ExitCode::from(2)
            }
            Failure::Reported => ExitCode::from(1),
            Failure::Interrupted => ExitCode::from(130),
            Failure::Error(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}
