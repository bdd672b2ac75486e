//! Writing to stdout and stderr without panicking.
//!
//! `println!` panics when stdout is a closed pipe (`seal images | head -1`) or a full disk
//! (`>/dev/full`). Here a closed pipe ends the command quietly with the shell's status for a
//! broken pipe, 141 (128 + SIGPIPE), as `ls | head -1` does; any other write error (ENOSPC)
//! is an error naming stdout, exit 1. Stderr is best effort: a failure to print a message
//! about a failure cannot be reported anywhere.

use std::io::{self, Write};

use crate::failure::Failure;

/// Print a line on stdout: `outln!(...)?`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::stdout_line(format_args!($($arg)*))
    };
}

/// Print a line on stderr, ignoring errors (never panics).
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::stderr_line(format_args!($($arg)*))
    };
}

pub(crate) use {errln, outln};

/// Write one line to stdout.
pub fn stdout_line(args: std::fmt::Arguments<'_>) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .map_err(stdout_error)
}

/// Flush stdout (its buffered tail would otherwise be lost, or fail silently, at exit).
pub fn flush_stdout() -> Result<(), Failure> {
    io::stdout().lock().flush().map_err(stdout_error)
}

/// Write one line to stderr, ignoring errors.
pub fn stderr_line(args: std::fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// Write text to stderr as it is, ignoring errors.
pub fn stderr_text(text: &str) {
    let _ = io::stderr().lock().write_all(text.as_bytes());
}

/// The failure of a write to stdout: a closed pipe is not an error, anything else is.
pub fn stdout_error(e: io::Error) -> Failure {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Failure::BrokenPipe
    } else {
        Failure::Error(anyhow::anyhow!("writing to stdout: {e}"))
    }
}
