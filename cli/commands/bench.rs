//! `seal bench`: the phases of BENCHMARKS.md (cold, noop, touch1, change1) for the
//! user's own Kubefile, each build a real `seal build` child in a scratch store reading a
//! scratch copy of the context; medians, peak memory and per step what ran.
//!
//! The user's context is only copied, and the user's store only read (a base image it holds
//! is saved from a read-only view and loaded into the scratch seed store).

mod measure;
mod report;
mod scratch;

use std::ffi::OsString;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use seal_frontend::diagnostic::render_all;
use seal_store::RegistryOptions;

use crate::args::bench::BenchArgs;
use crate::args::{BuildMode, FormatArg};
use crate::failure::Failure;
use crate::output::{errln, outln};
use measure::{BuildCommand, RunResult};
use report::{PhaseReport, Report};
use scratch::Scratch;

/// How long after a file's last change its stat is "racy" (the file-hash cache re-reads it),
/// plus a margin: the warm store's builds wait this long, as a rebuild minutes later would.
const PAST_RACY_WINDOW: Duration = Duration::from_millis(2500);

/// Run `seal bench`.
pub fn run(root: &Path, args: BenchArgs, registries: &RegistryOptions) -> Result<(), Failure> {
    let error = |message: String| Failure::Error(anyhow::anyhow!(message));
    let context = args
        .context
        .canonicalize()
        .map_err(|e| Failure::Usage(format!("build context {}: {e}", args.context.display())))?;
    if !context.is_dir() {
        return Err(Failure::Usage(format!(
            "build context {} is not a directory",
            context.display()
        )));
    }
    let kubefile = match &args.file {
        Some(f) => f
            .canonicalize()
            .map_err(|e| Failure::Usage(format!("the Kubefile {}: {e}", f.display())))?,
        None => context.join("Kubefile"),
    };
    let source = std::fs::read(&kubefile)
        .map_err(|e| Failure::Usage(format!("reading the Kubefile {}: {e}", kubefile.display())))?;
    let parsed = seal_frontend::parse_checked(&source);
    if !parsed.errors.is_empty() {
        let shown = kubefile.display().to_string();
        crate::output::stderr_text(&render_all(&parsed.errors, &shown, &source));
        return Err(Failure::Reported);
    }

    let mut scratch = Scratch::new(&context).map_err(error)?;
    // A Kubefile inside the context is read from the copy, like every other file.
    let kubefile_used = match kubefile.strip_prefix(&context) {
        Ok(rel) => scratch.context.join(rel),
        Err(_) => kubefile.clone(),
    };
    let edited = scratch::edit_target(&scratch.context, args.edit.as_deref(), &parsed.kubefile)
        .map_err(Failure::Usage)?;
    let exe = std::env::current_exe().map_err(|e| error(format!("finding seal itself: {e}")))?;
    let globals = global_flags(registries);
    let images = scratch::base_images(&parsed.kubefile);
    let seeded = scratch::seed_images(&scratch, &exe, &globals, root, &images).map_err(error)?;
    let mut build_flags: Vec<OsString> = vec!["-f".into(), kubefile_used.into()];
    for arg in &args.build_args {
        build_flags.extend(["--build-arg".into(), arg.into()]);
    }
    build_flags.extend([
        "--build-mode".into(),
        match args.build_mode {
            BuildMode::Full => "full",
            BuildMode::Lite => "lite",
        }
        .into(),
    ]);
    let command = BuildCommand {
        exe,
        globals,
        build_flags,
        context: scratch.context.clone(),
    };
    let runs = args.runs as usize;
    let target = scratch.context.join(&edited);
    let measure = |phase: &str, i: usize, store: &Path| -> Result<RunResult, Failure> {
        errln!("seal bench: {phase} {}/{runs}", i + 1);
        command
            .run(store)
            .map_err(|e| error(format!("{phase} run {}: {e}", i + 1)))
    };

    let mut cold = Vec::new();
    for i in 0..runs {
        let store = scratch.fresh_store().map_err(error)?;
        cold.push(measure("cold", i, &store)?);
        scratch.drop_store(&store);
    }
    let warm = scratch.fresh_store().map_err(error)?;
    for _ in 0..2 {
        errln!("seal bench: warming up the store");
        command.run(&warm).map_err(error)?;
        std::thread::sleep(PAST_RACY_WINDOW);
    }
    let mut noop = Vec::new();
    for i in 0..runs {
        noop.push(measure("noop", i, &warm)?);
    }
    let mut touch1 = Vec::new();
    for i in 0..runs {
        touch(&target).map_err(error)?;
        touch1.push(measure("touch1", i, &warm)?);
    }
    let original =
        std::fs::read(&target).map_err(|e| error(format!("reading {}: {e}", target.display())))?;
    let mut change1 = Vec::new();
    for i in 0..runs {
        change(&target, &original, i).map_err(error)?;
        change1.push(measure("change1", i, &warm)?);
    }

    let report = Report {
        context: args.context.display().to_string(),
        kubefile: match kubefile.strip_prefix(&context) {
            Ok(rel) => rel.display().to_string(),
            Err(_) => kubefile.display().to_string(),
        },
        runs: args.runs,
        edited,
        seeded,
        phases: vec![
            PhaseReport {
                phase: "cold",
                runs: cold,
            },
            PhaseReport {
                phase: "noop",
                runs: noop,
            },
            PhaseReport {
                phase: "touch1",
                runs: touch1,
            },
            PhaseReport {
                phase: "change1",
                runs: change1,
            },
        ],
    };
    drop(scratch);
    match args.format {
        FormatArg::Json => outln!("{}", report.json())?,
        FormatArg::Table => {
            let width = console::Term::stdout()
                .size_checked()
                .map_or(80, |(_, cols)| usize::from(cols))
                .min(100);
            let text = report.table(width);
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .map_err(crate::output::stdout_error)?;
        }
    }
    Ok(())
}

/// The global flags every child build gets.
fn global_flags(registries: &RegistryOptions) -> Vec<OsString> {
    let mut flags: Vec<OsString> = Vec::new();
    for registry in &registries.insecure {
        flags.extend(["--insecure-registry".into(), registry.into()]);
    }
    flags.extend([
        "--max-concurrent-transfers".into(),
        registries.max_concurrent_transfers.to_string().into(),
    ]);
    flags
}

/// touch1: the file's mtime is now, its bytes unchanged.
fn touch(path: &Path) -> Result<(), String> {
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()))
        .map_err(|e| format!("touching {}: {e}", path.display()))
}

/// change1, run `i`: the original bytes plus one comment line new in every run (a `#` line
/// keeps YAML, shell scripts and image lists valid).
fn change(path: &Path, original: &[u8], i: usize) -> Result<(), String> {
    let mut bytes = original.to_vec();
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    bytes.extend_from_slice(format!("# seal bench change1 {i} {nanos}\n").as_bytes());
    std::fs::write(path, bytes).map_err(|e| format!("changing {}: {e}", path.display()))
}
