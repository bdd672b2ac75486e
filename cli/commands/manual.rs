//! `seal completion SHELL` and `seal man [COMMAND]`: shell completion scripts
//! (`clap_complete`) and roff manual pages (`clap_mangen`), both generated from the clap
//! definitions in `args.rs`, so they never drift from the flags the binary accepts.

use clap::CommandFactory;

use crate::args::{Cli, CompletionArgs, ManArgs};
use crate::failure::Failure;
use crate::output::outln;

/// Run `seal completion`.
pub fn completion(args: CompletionArgs) -> Result<(), Failure> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "seal", &mut script);
    outln!("{}", String::from_utf8_lossy(&script).trim_end())?;
    Ok(())
}

/// Run `seal man`: seal(1), or seal-COMMAND(1) for one command.
pub fn man(args: ManArgs) -> Result<(), Failure> {
    let mut command = Cli::command();
    // Global flags and the version reach the subcommands only once the command is built.
    command.build();
    let page = match &args.command {
        None => command,
        Some(name) => {
            let Some(sub) = command.find_subcommand(name) else {
                let names: Vec<&str> = command
                    .get_subcommands()
                    .map(|c| c.get_name())
                    .filter(|n| *n != "help")
                    .collect();
                return Err(Failure::Usage(format!(
                    "seal man `{name}`: no such command (commands: {})",
                    names.join(", ")
                )));
            };
            // The built command knows itself as `seal build`, its page as seal-build(1).
            sub.clone()
        }
    };
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .map_err(|e| Failure::Error(anyhow::anyhow!("rendering the manual page: {e}")))?;
    outln!("{}", String::from_utf8_lossy(&roff).trim_end())?;
    Ok(())
}
