//! The `seal` binary: argv, dispatch to one file per command, exit codes.
//!
//! Only this crate parses argv, prints, or picks exit codes (STYLE.md).

mod args;
mod commands;
mod failure;
mod graph;
mod logging;
mod observe;
mod output;
mod progress;
mod root;
mod trace;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};
use failure::Failure;

fn main() -> ExitCode {
    // A RUN step's setup runs this binary inside the step's namespaces to mount its rootfs
    // (and, lite, a read-only host) and exec the step; nothing else of seal starts for it.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = seal_engine::executor::setup::helper_main(&args) {
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    // A cloud host's seal, started over SSH by a build's seal: requests on stdin.
    if args
        .get(1)
        .is_some_and(|a| a == seal_engine::executor::cloud::serve::SERVE_ARG)
    {
        return match seal_engine::executor::cloud::serve::serve(&root::store_root(None)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "seal {}: {e}",
                    seal_engine::executor::cloud::serve::SERVE_ARG
                );
                ExitCode::from(1)
            }
        };
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let tracing = match &cli.command {
        Command::Build(a) => a.observe.trace.is_some(),
        Command::Pull(a) => a.trace.is_some(),
        Command::Push(a) => a.trace.is_some(),
        _ => false,
    };
    logging::init(tracing);
    let root = root::store_root(cli.root);
    let registries = seal_store::RegistryOptions {
        insecure: cli.insecure_registries,
        max_concurrent_transfers: usize::from(cli.max_concurrent_transfers),
        registry_ca: cli.registry_ca,
        ..seal_store::RegistryOptions::default()
    };
    let result: Result<(), Failure> = match cli.command {
        Command::Build(a) => commands::build::run(&root, *a, &registries),
        Command::Images(a) => commands::images::run(&root, a),
        Command::Cloud(a) => commands::cloud::run(a),
        Command::Inspect(a) => commands::inspect::run(&root, a),
        Command::History(a) => commands::history::run(&root, a),
        Command::Completion(a) => commands::manual::completion(a),
        Command::Man(a) => commands::manual::man(a),
        Command::Save(a) => commands::save::run(&root, a, &registries),
        Command::Load(a) => commands::load::run(&root, a),
        Command::Rmi(a) => commands::rmi::run(&root, a),
        Command::Prune(a) => commands::prune::run(&root, a),
        Command::Du(a) => commands::du::run(&root, a),
        Command::Fsck(a) => commands::fsck::run(&root, a),
        Command::Scan(a) => commands::scan::run(a),
        Command::Bench(a) => commands::bench::run(&root, a, &registries),
        Command::Pull(a) => commands::registry::pull(&root, a, &registries),
        Command::Push(a) => commands::registry::push(&root, a, &registries),
        Command::Tag(a) => commands::registry::tag(&root, a),
        Command::Login(a) => commands::registry::login(a, &registries),
        Command::Logout(a) => commands::registry::logout(a),
    };
    match result.and_then(|()| output::flush_stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if let Some(message) = failure.message() {
                output::errln!("{message}");
            }
            failure.exit_code()
        }
    }
}
