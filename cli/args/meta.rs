//! Flags of the commands that describe rather than build: `seal history`, `seal completion`
//! and `seal man`.

use clap::Args;

use super::FormatArg;

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,
    /// Image name (`NAME[:TAG]`, `NAME@sha256:...`), or a manifest digest or a prefix of one
    pub name: String,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print (`build` prints seal-build(1)); seal(1) without one
    #[arg(value_name = "COMMAND")]
    pub command: Option<String>,
}
