//! `seal build`'s flags that record what a build did, for people: `--trace` and `--graph`.

use std::path::PathBuf;

use clap::Args;

/// Files a build writes about itself once its steps have run, whether they succeeded or not.
#[derive(Debug, Clone, Args)]
pub struct ObserveArgs {
    /// Write a timeline of the build to FILE once its steps have run (also when one failed):
    /// Chrome trace-event JSON (open it in https://ui.perfetto.dev or chrome://tracing), one
    /// track per thread, each step with its phases (context scan, hashing, tar, compression,
    /// blob write, unpack, RUN, pull) and cache lookups, bytes in the arguments
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// Write the build graph to FILE once its steps have run (also when one failed), as
    /// Graphviz DOT, or as SVG when FILE ends in `.svg` (needs Graphviz's `dot`): each op
    /// labelled with its Kubefile line, coloured by what it did (cached, executed, failed)
    #[arg(long, value_name = "FILE")]
    pub graph: Option<PathBuf>,
}
