//! `seal bench`'s flags.

use std::path::PathBuf;

use clap::Args;

use super::{BuildMode, FormatArg};

/// Time a Kubefile's builds the way BENCHMARKS.md does, in a scratch store and a
/// scratch copy of the context.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The Kubefile [default: PATH/Kubefile]
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Measured builds per phase (the table shows their median)
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,

    /// The file the touch1 and change1 phases edit, relative to PATH [default: the first file,
    /// in path order, of the last COPY's sources]
    #[arg(long, value_name = "PATH")]
    pub edit: Option<PathBuf>,

    /// Output: a table for people, or JSON
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,

    /// Passed to every build: a build-time variable declared with ARG
    #[arg(long = "build-arg", value_name = "NAME=VALUE")]
    pub build_args: Vec<String>,

    /// Passed to every build: whether images are collected (see `seal build --help`)
    #[arg(long, value_enum, default_value_t = BuildMode::Full)]
    pub build_mode: BuildMode,

    /// The build context (copied; the copy is what the builds read and the phases edit)
    #[arg(value_name = "PATH")]
    pub context: PathBuf,
}
