//! `seal build`: Kubefile -> diagnostics or LLB -> solve -> image.
//!
//! Order matters for "a build that fails to parse writes nothing": the Kubefile is parsed,
//! checked and lowered, and every COPY source is validated, before the store is opened (or
//! created). Only a FROM of a stored image opens it earlier, to pin the base image.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use seal_engine::llb::{CollectOp, Compression, ExecMode, LayerFormat};
use seal_engine::{BuildRequest, Platform};
use seal_frontend::diagnostic::{render, render_all};
use seal_frontend::lower::{lower, Entitlements, LowerOptions, ResolvedImage};
use seal_frontend::{parse_checked, Diagnostic};
use seal_solver::{NodeStatus, SolveOptions};
use seal_store::{Reference, RegistryOptions, Store};

use crate::args::{BuildArgs, BuildMode, CompressionArg, Entitlement, ModeArg, PullPolicy};
use crate::commands::image_name;
use crate::failure::{chain_text, Failure};
use crate::observe::Observer;
use crate::output::outln;
use crate::progress::{diagnostics, warnings_to, Renderer, Style};

mod collection;
mod executors;
mod platforms;
mod resolve;

use collection::{collect_op, read_auth_lists, refuse_collection_flags};
use executors::{check_cloud_files, cloud_executor, remote_executor};
use resolve::{open_slot, resolve_image, Wanted};

/// What `--allow` grants (clap has checked the names).
fn entitlements(allow: &[Entitlement]) -> Entitlements {
    Entitlements {
        network_host: allow.contains(&Entitlement::NetworkHost),
        security_insecure: allow.contains(&Entitlement::SecurityInsecure),
    }
}

/// Run `seal build`. With `--progress json` every line on stderr is a JSON object, the final
/// error included.
pub fn run(root: &Path, args: BuildArgs, registries: &RegistryOptions) -> Result<(), Failure> {
    let mut renderer = Renderer::new(Style::from_mode(args.progress));
    // Warnings logged anywhere while the build runs reach the renderer.
    let (warn_tx, warn_rx) = tokio::sync::mpsc::unbounded_channel();
    let _sink = warnings_to(warn_tx);
    let json = renderer.style() == Style::Json;
    match build(root, args, registries, &mut renderer, warn_rx) {
        Err(Failure::Error(e)) if json => {
            renderer.error(&chain_text(&e));
            Err(Failure::Reported)
        }
        Err(Failure::Usage(message)) if json => {
            renderer.error(&message);
            Err(Failure::ReportedUsage)
        }
        other => other,
    }
}

fn build(
    root: &Path,
    args: BuildArgs,
    registries: &RegistryOptions,
    renderer: &mut Renderer,
    mut warn_rx: tokio::sync::mpsc::UnboundedReceiver<String>,
) -> Result<(), Failure> {
    let style = renderer.style();
    let mut observer = Observer::new(&args.observe)?;
    let names = args
        .tags
        .iter()
        .map(|t| image_name(t))
        .collect::<Result<Vec<_>, _>>()?;
    let Some(name) = names.first().cloned() else {
        return Err(Failure::Usage("name the image with -t NAME".into()));
    };
    let build_args = parse_build_args(&args.build_args)?;
    let remote = remote_executor(&args)?;
    // Ctrl-C from here on is seen (not fatal), so a provisioned host is always deleted.
    let interrupted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if args.cloud_api.cloud_provider.is_some() {
        if args.mode != ModeArg::Cloud {
            return Err(Failure::Usage(
                "--cloud-provider runs RUN steps in --mode cloud; add --mode cloud".into(),
            ));
        }
        super::cloud::watch_interrupts(interrupted.clone())?;
    }
    check_cloud_files(&args)?;
    // Created at the first cloud RUN; dropped when build() returns, whatever the outcome:
    // the host is deleted then.
    let provider = super::cloud::on_demand_host(&args)?;
    let _delete_host = provider.clone().map(DeleteAtEnd);
    let cloud = cloud_executor(&args, provider)?;
    if remote.is_some() && cloud.is_some() {
        return Err(Failure::Usage(
            "--remote-executor and --cloud-host both say who runs RUN steps; pick one".into(),
        ));
    }
    let exec_mode = match args.mode {
        _ if remote.is_some() => ExecMode::Remote,
        ModeArg::Lite => ExecMode::Lite,
        ModeArg::Container => ExecMode::Container,
        ModeArg::Cloud if cloud.is_some() => ExecMode::Cloud,
        ModeArg::Cloud => {
            return Err(Failure::Usage(
                "--mode cloud needs a host: --cloud-host ssh://USER@HOST[:PORT] or --cloud-provider aws|alicloud".into(),
            ))
        }
    };
    if cloud.is_some() && args.mode != ModeArg::Cloud {
        return Err(Failure::Usage(
            "--cloud-host runs RUN steps in --mode cloud; add --mode cloud".into(),
        ));
    }
    let context_dir = args.context.canonicalize().map_err(|e| {
        Failure::Error(anyhow::anyhow!(
            "build context {}: {e}",
            args.context.display()
        ))
    })?;
    if !context_dir.is_dir() {
        return Err(Failure::Error(anyhow::anyhow!(
            "build context {} is not a directory",
            context_dir.display()
        )));
    }
    let kubefile_path = args
        .file
        .clone()
        .unwrap_or_else(|| context_dir.join("Kubefile"));
    let source = std::fs::read(&kubefile_path)
        .with_context(|| format!("reading the Kubefile {}", kubefile_path.display()))?;
    let file_name = display_name(&kubefile_path);

    let parsed = parse_checked(&source);
    if !parsed.errors.is_empty() {
        renderer.diagnostics(&render_all(&parsed.errors, &file_name, &source));
        return Err(Failure::Reported);
    }
    if let Some(target) = &args.target {
        check_target(&parsed.kubefile, target)?;
    }

    let ignore_patterns =
        seal_engine::ignore::read_ignore_patterns(&context_dir).map_err(anyhow::Error::from)?;
    let epoch = source_date_epoch()?;
    let compression = match args.compression {
        CompressionArg::Gzip => Compression::Gzip,
        CompressionArg::Zstd => Compression::Zstd,
        CompressionArg::None => Compression::None,
    };
    let (collect, auth_sections) = match args.build_mode {
        BuildMode::Lite => {
            refuse_collection_flags(&args)?;
            (None, Vec::new())
        }
        BuildMode::Full => {
            let sections = read_auth_lists(&context_dir, &args.image_list_with_auth)?;
            let mut op = collect_op(&args)?;
            op.added.extend(
                sections
                    .iter()
                    .flat_map(|s| s.images.iter().map(|r| r.to_string())),
            );
            op.added.sort();
            op.added.dedup();
            (Some(op), sections)
        }
    };
    let platforms = platforms::parse_platforms(&args.platform)?;
    let several = platforms.len() > 1;
    if several && (args.observe.trace.is_some() || args.observe.graph.is_some()) {
        return Err(Failure::Usage(
            "--trace and --graph record one build graph: use them with one --platform".into(),
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let store: RefCell<Option<Arc<Store>>> = RefCell::new(None);
    let (mut cached, mut executed, mut files_read, mut images) = (0, 0, 0, 0);
    let mut built: Vec<(Platform, seal_store::Digest)> = Vec::new();
    let mut caches = String::new();
    // Each platform lowers and solves the Kubefile once; the platform enters no step's key by
    // itself, so a step whose inputs are the same for two platforms is cached for the second.
    for platform in &platforms {
        let mut resolve = |image: &str, for_platform: &Platform| -> Result<ResolvedImage, String> {
            let wanted = Wanted {
                platform: for_platform,
                all: &platforms,
                // With a remote cache a FROM image is pulled lazily: the steps over it may all
                // be cached, and then its layers are never needed here.
                lazy: !args.cache_from.is_empty(),
            };
            resolve_image(root, &store, image, args.pull, registries, style, wanted)
        };
        let collect = collect.clone().map(|mut op: CollectOp| {
            op.platform = platform.to_string();
            op
        });
        let lowered = lower(
            &parsed.kubefile,
            &source,
            LowerOptions {
                build_args: build_args.clone(),
                ignore_patterns: ignore_patterns.clone(),
                format: LayerFormat {
                    compression,
                    source_date_epoch: epoch,
                },
                platform: platform.clone(),
                exec_mode,
                entitlements: entitlements(&args.allow),
                target: args.target.clone(),
                resolve_image: &mut resolve,
                collect,
            },
        )
        .map_err(|diags| {
            renderer.diagnostics(&render_all(&diags, &file_name, &source));
            Failure::Reported
        })?;
        for warning in &lowered.warnings {
            renderer.warning(warning);
        }
        while let Ok(warning) = warn_rx.try_recv() {
            renderer.warning(&warning);
        }
        if args.print_llb {
            outln!("{}", lowered.definition.to_json())?;
            continue;
        }
        let definition = lowered.definition;
        let span_error =
            |node: Option<usize>, error: &seal_engine::EngineError, prefix: &str| -> Failure {
                let message = format!("{prefix}{error}");
                let help = help_for(error, &context_dir);
                let node = node.and_then(|n| definition.nodes.get(n));
                let span = node
                    .and_then(|n| source_span(n, error))
                    .or_else(|| node.and_then(|n| n.metadata.span));
                match span {
                    Some((start, end)) => {
                        let mut d =
                            Diagnostic::new(message, seal_frontend::ast::Span::new(start, end));
                        d.help = help;
                        diagnostics(style, &render(&d, &file_name, &source));
                        Failure::Reported
                    }
                    None => Failure::Error(anyhow::anyhow!(message)),
                }
            };
        if let Err(e) = seal_engine::validate_sources(&definition, &context_dir) {
            return Err(span_error(e.node, &e.source, ""));
        }
        // RUN needs root, and a foreign platform's RUN an emulator: say so at the first RUN
        // that lacks what it needs, before any step runs.
        let runs: Vec<usize> = (0..definition.nodes.len())
            .filter(|&i| matches!(definition.nodes[i].op, seal_engine::llb::Op::Exec(_)))
            .collect();
        if let Some(&first_run) = runs.first().filter(|_| remote.is_none()) {
            if let Err(e) = seal_engine::executor::check_privileges() {
                return Err(span_error(Some(first_run), &e, ""));
            }
        }
        let binfmt = platforms::binfmt_dir();
        for &run in &runs {
            let node = &definition.nodes[run];
            let run_platform = node.metadata.platform.as_ref().unwrap_or(platform);
            if let Some(why) = platforms::run_refusal(run_platform, exec_mode, &binfmt) {
                return Err(match node.metadata.span {
                    Some((start, end)) => {
                        let d = Diagnostic::new(why, seal_frontend::ast::Span::new(start, end));
                        diagnostics(style, &render(&d, &file_name, &source));
                        Failure::Reported
                    }
                    None => Failure::Error(anyhow::anyhow!(why)),
                });
            }
        }

        let no_cache_nodes = no_cache_nodes(&definition, &args.no_cache_filter)?;
        let store = open_slot(root, &store).map_err(|e| Failure::Error(anyhow::anyhow!(e)))?;
        // One platform of several shows its platform before each step's title.
        let descriptions: Vec<Option<String>> = definition
            .nodes
            .iter()
            .map(|n| match (&n.metadata.description, several) {
                (Some(d), true) => Some(format!("[{platform}] {d}")),
                (d, _) => d.clone(),
            })
            .collect();
        let quiet: Vec<bool> = definition.nodes.iter().map(|n| n.metadata.quiet).collect();
        let options = SolveOptions {
            max_parallelism: args
                .max_parallelism
                .map(usize::from)
                .unwrap_or_else(default_parallelism),
            max_offloaded: usize::from(args.remote_jobs),
            no_cache: args.no_cache,
            no_cache_nodes,
            ..SolveOptions::default()
        };
        let request = BuildRequest {
            definition: definition.clone(),
            image: lowered.image,
            context_dir: context_dir.clone(),
            name: (!several).then(|| name.clone()),
            options,
            seal_version: env!("CARGO_PKG_VERSION").into(),
            registries: registries.clone(),
            pull_never: args.pull == PullPolicy::Never,
            repository_credentials: auth_sections
                .iter()
                .flat_map(|s| {
                    s.images
                        .iter()
                        .map(|r| (r.domain.clone(), r.path.clone(), s.credentials.clone()))
                })
                .collect(),
            remote: remote.clone(),
            cloud: cloud.clone(),
            explain: args.explain,
            steps_name: steps_name(&name, several.then_some(platform)),
            cache_from: args.cache_from.clone(),
            cache_to: args.cache_to.clone(),
        };
        // Layers of imported cache records stay remote until a step needs their bytes.
        store.set_fetcher(Arc::new(seal_store::StandardFetcher::new(
            registries.clone(),
        )));
        renderer.set_nodes(descriptions, quiet);
        let cancel = request.options.cancel.clone();
        let result = runtime.block_on(async {
            // Ctrl-C stops the build: running steps are killed and their mounts vanish with them.
            let interrupt = cancel.clone();
            let early = interrupted.clone();
            let watcher = tokio::spawn(async move {
                // A Ctrl-C the provisioning watcher saw first counts too.
                loop {
                    tokio::select! {
                        r = tokio::signal::ctrl_c() => if r.is_ok() { break },
                        _ = tokio::time::sleep(std::time::Duration::from_millis(100)) => {
                            if early.load(std::sync::atomic::Ordering::SeqCst) {
                                break;
                            }
                        }
                    }
                }
                tracing::warn!("interrupted: stopping the build");
                interrupt.store(true, std::sync::atomic::Ordering::SeqCst);
            });
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let build = tokio::spawn(seal_engine::build(store.clone(), request, Some(tx)));
            loop {
                tokio::select! {
                    event = rx.recv() => match event {
                        Some(event) => {
                            observer.see(&event);
                            renderer.handle(&event);
                        }
                        None => break,
                    },
                    Some(warning) = warn_rx.recv() => renderer.warning(&warning),
                }
            }
            while let Ok(warning) = warn_rx.try_recv() {
                renderer.warning(&warning);
            }
            let result = build.await;
            watcher.abort();
            result
        });
        // --trace and --graph: written whatever the outcome; a build's own failure comes first.
        let failed = match &result {
            Ok(Err(e)) => e.node,
            _ => None,
        };
        let observed = observer.finish(&definition, &source, &file_name, failed);
        if let (Err(message), Ok(Err(_)) | Err(_)) = (&observed, &result) {
            renderer.warning(message);
        }
        let report = match result {
            Ok(Ok(report)) => report,
            Ok(Err(e)) if matches!(e.source, seal_engine::EngineError::Cancelled) => {
                renderer.finish("build interrupted");
                return Err(Failure::Interrupted);
            }
            Ok(Err(e)) => {
                renderer.finish("build failed");
                let prefix = if several {
                    format!("build for {platform} failed: ")
                } else {
                    "build failed: ".to_string()
                };
                return Err(span_error(e.node, &e.source, &prefix));
            }
            Err(e) => {
                return Err(Failure::Error(anyhow::anyhow!(
                    "the build task failed: {e}"
                )))
            }
        };
        observed.map_err(|e| Failure::Error(anyhow::anyhow!(e)))?;
        let steps = definition
            .nodes
            .iter()
            .zip(&report.status)
            .filter(|(n, _)| n.metadata.description.is_some() && !n.metadata.quiet);
        for (_, status) in steps {
            match status {
                Some(NodeStatus::Cached) => cached += 1,
                Some(NodeStatus::Executed) => executed += 1,
                None => {}
            }
        }
        images += report.collected.as_ref().map_or(0, |c| c.images.len());
        files_read += report.files_hashed;
        // Every further -t name remembers the steps as the first does.
        for other in &names[1..] {
            record_steps(
                &store,
                &steps_name(other, several.then_some(platform)),
                &report.steps,
            )?;
        }
        for (location, records) in &report.imported {
            caches.push_str(&format!(", {records} cache records from {location}"));
        }
        for (location, export) in &report.exported_caches {
            caches.push_str(&format!(
                ", {} cache records to {location} ({} blobs, {} sent)",
                export.records, export.blobs, export.sent
            ));
        }
        built.push((platform.clone(), report.exported.manifest));
    }
    if args.print_llb {
        return Ok(());
    }
    let store = open_slot(root, &store).map_err(|e| Failure::Error(anyhow::anyhow!(e)))?;
    // One platform names its manifest (export did); several name the index of their images.
    let digest = match built.as_slice() {
        [(_, manifest)] => manifest.clone(),
        _ => {
            let index = platforms::write_index(&store, &built)?;
            store
                .set_image(&name, &index)
                .with_context(|| format!("naming the image {name}"))?;
            index
        }
    };
    let images = if images > 0 {
        format!(", {images} container images in registry/")
    } else {
        String::new()
    };
    // Every further -t name points at the same manifest or index.
    for other in &names[1..] {
        store
            .set_image(other, &digest)
            .with_context(|| format!("naming the image {other}"))?;
    }
    while let Ok(warning) = warn_rx.try_recv() {
        renderer.warning(&warning);
    }
    let all_names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let remote_summary = remote
        .as_ref()
        .and_then(|r| r.connected())
        .map(|r| {
            use std::sync::atomic::Ordering::Relaxed;
            let c = &r.counters;
            format!(
                "; remote: {} actions executed, {} from its action cache, {} bytes uploaded in {} blobs, {} bytes downloaded",
                c.executed_actions.load(Relaxed),
                c.cached_actions.load(Relaxed),
                c.uploaded_bytes.load(Relaxed),
                c.uploaded_blobs.load(Relaxed),
                c.downloaded_bytes.load(Relaxed),
            )
        })
        .unwrap_or_default();
    let cloud_summary = cloud
        .as_ref()
        .map(|c| {
            use std::sync::atomic::Ordering::Relaxed;
            let c = &c.counters;
            format!(
                "; cloud: {} steps run, {} bytes sent in {} layers, {} bytes received in {} layers",
                c.steps.load(Relaxed),
                c.bytes_sent.load(Relaxed),
                c.blobs_sent.load(Relaxed),
                c.bytes_received.load(Relaxed),
                c.blobs_received.load(Relaxed),
            )
        })
        .unwrap_or_default();
    let for_platforms = if several {
        let list: Vec<String> = platforms.iter().map(|p| p.to_string()).collect();
        format!(" for {}", list.join(", "))
    } else {
        String::new()
    };
    // A terminal shows a short digest and the counts on a line of their own, so the summary
    // reads at 80 columns; the full digest is on stdout.
    let full = digest.to_string();
    let (short, separator) = match style {
        Style::Tty => (full.chars().take(19).collect(), ":\n  "),
        _ => (full.clone(), ": "),
    };
    renderer.finish(&format!(
        "built {}{for_platforms} {short}{separator}{cached} steps cached, {executed} executed, {files_read} files read{images}{caches}{remote_summary}{cloud_summary}",
        all_names.join(", "),
    ));
    outln!("{full}")?;
    Ok(())
}

/// The name a build's step records are kept under (`--explain` compares with them): the image
/// name, and for one platform of several, the name and the platform (each platform's last
/// build is what its next one is compared with).
fn steps_name(name: &Reference, platform: Option<&Platform>) -> String {
    match platform {
        Some(p) => format!("{name}@{p}"),
        None => name.to_string(),
    }
}

/// Record what the build's steps read under one more name (`-t` given twice).
fn record_steps(
    store: &Store,
    name: &str,
    steps: &[seal_engine::explain::NewRecord],
) -> Result<(), Failure> {
    let context = || format!("recording the steps of {name}");
    let previous = seal_engine::explain::record::load(store, name).with_context(context)?;
    seal_engine::explain::record::save(store, name, &previous, steps, seal_store::now_unix())
        .with_context(context)?;
    Ok(())
}

/// The Definition nodes `--no-cache-filter` names: `N`, `STAGE` or `STAGE:N`.
fn no_cache_nodes(
    definition: &seal_engine::llb::Definition,
    filter: &[String],
) -> Result<std::collections::BTreeSet<seal_solver::NodeId>, Failure> {
    let mut nodes = std::collections::BTreeSet::new();
    for item in filter {
        let item = item.trim();
        let (stage, step) = match item.rsplit_once(':') {
            Some((stage, n)) => (Some(stage), Some(n)),
            None if item.chars().all(|c| c.is_ascii_digit()) => (None, Some(item)),
            None => (Some(item), None),
        };
        let step: Option<usize> = match step {
            Some(n) => Some(n.parse().map_err(|_| {
                Failure::Usage(format!(
                    "--no-cache-filter `{item}`: expected N, STAGE or STAGE:N"
                ))
            })?),
            None => None,
        };
        let matching: Vec<usize> = (0..definition.nodes.len())
            .filter(|&i| {
                let m = &definition.nodes[i].metadata;
                m.description.is_some()
                    && step.is_none_or(|n| m.step == Some(n))
                    && stage.is_none_or(|s| {
                        m.stage
                            .as_deref()
                            .is_some_and(|own| own.eq_ignore_ascii_case(s))
                    })
            })
            .collect();
        if matching.is_empty() {
            let mut stages: Vec<&str> = definition
                .nodes
                .iter()
                .filter(|n| n.metadata.description.is_some())
                .filter_map(|n| n.metadata.stage.as_deref())
                .collect();
            stages.dedup();
            return Err(Failure::Usage(format!(
                "--no-cache-filter `{item}`: no step of the Kubefile matches{}",
                suggestion(stage.unwrap_or(item), &stages)
            )));
        }
        nodes.extend(matching.into_iter().map(|i| seal_solver::NodeId(i as u32)));
    }
    Ok(nodes)
}

/// `--target NAME` must name a stage (`FROM image AS NAME`): checked before anything is
/// resolved or pulled, as a usage error.
fn check_target(kubefile: &seal_frontend::ast::Kubefile, target: &str) -> Result<(), Failure> {
    let stages = stage_names(kubefile);
    if stages.iter().any(|s| s.eq_ignore_ascii_case(target)) {
        return Ok(());
    }
    let names: Vec<&str> = stages.iter().map(String::as_str).collect();
    Err(Failure::Usage(format!(
        "--target `{target}`: no stage has that name{}",
        suggestion(target, &names)
    )))
}

/// The `AS` names of the Kubefile's stages, in order.
fn stage_names(kubefile: &seal_frontend::ast::Kubefile) -> Vec<String> {
    kubefile
        .instructions
        .iter()
        .filter(|i| i.keyword == seal_frontend::ast::Keyword::From)
        .filter_map(|i| match i.words.as_slice() {
            [_, as_word, name, ..] if as_word.text.eq_ignore_ascii_case("as") => {
                Some(name.text.clone())
            }
            _ => None,
        })
        .collect()
}

/// `; did you mean `x`? (stages: a, b, x)` for a name that is not among `stages`.
fn suggestion(wrong: &str, stages: &[&str]) -> String {
    if stages.is_empty() {
        return "; the Kubefile names no stage (`FROM image AS NAME`)".into();
    }
    let closest = stages
        .iter()
        .map(|s| {
            (
                strsim::normalized_damerau_levenshtein(&wrong.to_lowercase(), &s.to_lowercase()),
                *s,
            )
        })
        .filter(|(score, _)| *score >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match closest {
        Some((_, best)) => format!("; did you mean `{best}`? (stages: {})", stages.join(", ")),
        None => format!(" (stages: {})", stages.join(", ")),
    }
}

fn parse_build_args(raw: &[String]) -> Result<BTreeMap<String, String>, Failure> {
    let mut out = BTreeMap::new();
    for arg in raw {
        match arg.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            Some(_) => {
                return Err(Failure::Usage(format!(
                    "--build-arg `{arg}`: expected NAME=VALUE"
                )))
            }
            None => {
                if let Ok(v) = std::env::var(arg) {
                    out.insert(arg.clone(), v);
                }
            }
        }
    }
    Ok(out)
}

fn source_date_epoch() -> Result<i64, Failure> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .ok_or_else(|| {
                Failure::Usage(format!(
                    "SOURCE_DATE_EPOCH=`{v}`: expected seconds since 1970 (a non-negative integer)"
                ))
            }),
        _ => Ok(0),
    }
}

fn default_parallelism() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn display_name(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    path.strip_prefix(&cwd)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The span of the COPY source word an error is about, when it names one.
fn source_span(
    node: &seal_engine::llb::Node,
    error: &seal_engine::EngineError,
) -> Option<(usize, usize)> {
    use seal_engine::llb::{FileAction, Op};
    use seal_engine::EngineError as E;
    let pattern = match error {
        E::SourceNotFound { source_path }
        | E::SourceExcluded { source_path }
        | E::SourceOutsideContext { source_path, .. } => source_path,
        E::GlobNoMatch { pattern } | E::BadGlob { pattern, .. } => pattern,
        _ => return None,
    };
    let Op::File(file) = &node.op else {
        return None;
    };
    let sources = file.actions.iter().find_map(|a| match a {
        FileAction::Copy(c) => Some(&c.sources),
        FileAction::Add(a) => Some(&a.sources),
        _ => None,
    })?;
    let index = sources.iter().position(|s| &s.pattern == pattern)?;
    node.metadata.source_spans.get(index).copied()
}

fn help_for(error: &seal_engine::EngineError, context: &Path) -> Option<String> {
    use seal_engine::EngineError as E;
    match error {
        E::SourceNotFound { .. } | E::GlobNoMatch { .. } => Some(format!(
            "sources are relative to the build context {}",
            context.display()
        )),
        E::SourceExcluded { .. } => {
            Some("remove the pattern from .sealignore/.dockerignore, or add a `!` exception".into())
        }
        E::SourceOutsideContext { .. } => {
            Some("copy the file into the build context instead of linking to it".into())
        }
        _ => None,
    }
}

/// Deletes a `--cloud-provider` host when build() returns, whatever the outcome.
struct DeleteAtEnd(Arc<super::cloud::OnDemandHost>);

impl Drop for DeleteAtEnd {
    fn drop(&mut self) {
        self.0.delete();
    }
}
