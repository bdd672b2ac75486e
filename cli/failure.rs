//! How a command fails, and the exit code each failure maps to.
//!
//! 0: success; 1: a failed build, a bad Kubefile, or any runtime error; 2: bad command-line
//! usage (clap's own errors use 2 as well); 130: interrupted by Ctrl-C; 141: stdout is a
//! closed pipe (128 + SIGPIPE, what a shell reports for `ls | head -1`; nothing is printed).

use std::process::ExitCode;

/// A command's failure.
#[derive(Debug)]
pub enum Failure {
    /// Bad command-line usage: printed as `error: ...`, exit code 2.
    Usage(String),
    /// Already printed (rendered diagnostics): exit code 1.
    Reported,
    /// Bad usage, already printed (as a JSON event of `--progress json`): exit code 2.
    ReportedUsage,
    /// Stopped by Ctrl-C: exit code 130, as shells report SIGINT.
    Interrupted,
    /// The reader of stdout went away: exit code 141, quietly.
    BrokenPipe,
    /// Anything else: printed with its cause chain, exit code 1.
    Error(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure::Error(e.into())
    }
}

impl Failure {
    /// What to print on stderr, when it was not printed yet.
    pub fn message(&self) -> Option<String> {
        match self {
            Failure::Usage(msg) => Some(format!(
                "error: {msg}\n\nFor more information, try '--help'."
            )),
            Failure::Error(e) => Some(format!("error: {}", chain_text(e))),
            Failure::Reported
            | Failure::ReportedUsage
            | Failure::Interrupted
            | Failure::BrokenPipe => None,
        }
    }

    /// The process's exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Failure::Usage(_) | Failure::ReportedUsage => 2,
            Failure::Reported | Failure::Error(_) => 1,
            Failure::Interrupted => 130,
            Failure::BrokenPipe => 141,
        })
    }
}

/// The error and its causes joined with `: `, leaving out a cause whose text the message so
/// far already ends with (errors that print their source, as most of ours do, would otherwise
/// say it twice: `Permission denied (os error 13): Permission denied (os error 13)`).
pub fn chain_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.is_empty() {
            text = part;
        } else if !part.is_empty() && !text.ends_with(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::chain_text;

    #[test]
    fn a_cause_already_printed_is_not_repeated() {
        let io = std::io::Error::from_raw_os_error(13);
        let e = anyhow::Error::new(io).context("reading /x");
        let io_text = std::io::Error::from_raw_os_error(13).to_string();
        assert_eq!(chain_text(&e), format!("reading /x: {io_text}"));
        /// An error that prints its source and also returns it from `source()`.
        #[derive(Debug)]
        struct Printed {
            source: std::io::Error,
        }
        impl std::fmt::Display for Printed {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "opening /y: {}", self.source)
            }
        }
        impl std::error::Error for Printed {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.source)
            }
        }
        let e = anyhow::Error::new(Printed {
            source: std::io::Error::from_raw_os_error(13),
        })
        .context("loading");
        assert_eq!(chain_text(&e), format!("loading: opening /y: {io_text}"));
    }
}
