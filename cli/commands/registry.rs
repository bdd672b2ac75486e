//! `seal pull`, `seal push`, `seal tag`, `seal login`, `seal logout`: the registry client
//! lives in the store (`seal_store::registry`); this file picks names, reads the password and
//! prints, including the per-blob transfer progress ([`TransferView`]).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use seal_store::registry::{auth, Client, Credentials, TransferEvent};
use seal_store::{Digest, Platform, RegistryOptions};

use crate::args::{LoginArgs, LogoutArgs, PullArgs, PushArgs, TagArgs};
use crate::commands::{image_name, open_existing_store, open_store, store_platforms};
use crate::failure::Failure;
use crate::output::{errln, outln};
use crate::progress::Style;

/// Run `seal pull`: prints the manifest digest (the index's, for several platforms).
pub fn pull(root: &Path, args: PullArgs, options: &RegistryOptions) -> Result<(), Failure> {
    let name = image_name(&args.name)?;
    let mut platforms = store_platforms(&args.platform)?;
    if platforms.is_empty() {
        platforms.push(Platform::host());
    }
    let store = open_store(root)?;
    let client = Client::new(options.clone());
    let view = TransferView::new(Style::from_mode(args.progress), Direction::Pull);
    view.note(&format!("pulling {name}"));
    let report = client.pull_platforms(&store, &name, &platforms, &|e| view.handle(e));
    view.finish();
    let traced = crate::trace::write_for("seal pull", args.trace.as_deref());
    let report = report?;
    traced.map_err(|e| Failure::Error(anyhow::anyhow!(e)))?;
    view.note(&format!(
        "pulled {name}: {} blobs fetched, {} already present",
        report.transferred, report.skipped
    ));
    outln!("{}", report.manifest)?;
    Ok(())
}

/// Run `seal push`: prints the manifest digest.
pub fn push(root: &Path, args: PushArgs, options: &RegistryOptions) -> Result<(), Failure> {
    let name = image_name(&args.name)?;
    let store = open_existing_store(root)?;
    // A remote layer (a cache import's) is mounted when it is in the same registry, else
    // downloaded before its upload.
    store.set_fetcher(std::sync::Arc::new(seal_store::StandardFetcher::new(
        options.clone(),
    )));
    let client = Client::new(options.clone());
    let view = TransferView::new(Style::from_mode(args.progress), Direction::Push);
    view.note(&format!("pushing {name}"));
    let report = client.push(&store, &name, &|e| view.handle(e));
    view.finish();
    let traced = crate::trace::write_for("seal push", args.trace.as_deref());
    let report = report?;
    traced.map_err(|e| Failure::Error(anyhow::anyhow!(e)))?;
    view.note(&format!(
        "pushed {name}: {} blobs uploaded, {} already in the registry, {} mounted from other repositories",
        report.transferred, report.skipped, report.mounted
    ));
    outln!("{}", report.manifest)?;
    Ok(())
}

/// Which way blobs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Pull,
    Push,
}

/// Renders blob transfer events on stderr, from whichever thread sends them: live bars
/// (tty), lines (plain: start, bytes at most once a second per blob, end), or JSON objects.
pub struct TransferView {
    style: Style,
    direction: Direction,
    state: Mutex<ViewState>,
}

struct ViewState {
    multi: Option<MultiProgress>,
    bars: HashMap<Digest, ProgressBar>,
    /// When a plain bytes line was last printed for a blob.
    printed: HashMap<Digest, Instant>,
}

impl TransferView {
    pub fn new(style: Style, direction: Direction) -> TransferView {
        let multi = (style == Style::Tty)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        TransferView {
            style,
            direction,
            state: Mutex::new(ViewState {
                multi,
                bars: HashMap::new(),
                printed: HashMap::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ViewState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A message line (a JSON `message` event in json style).
    pub fn note(&self, message: &str) {
        if self.style == Style::Json {
            let line = serde_json::json!({ "event": "message", "message": message });
            let _ = writeln!(std::io::stderr().lock(), "{line}");
            return;
        }
        let state = self.state();
        match &state.multi {
            // With the live bars suspended, so they redraw below the message.
            Some(multi) => multi.suspend(|| errln!("{message}")),
            None => errln!("{message}"),
        }
    }

    /// Render one event.
    pub fn handle(&self, event: TransferEvent) {
        match self.style {
            Style::Json => self.json(&event),
            Style::Plain => self.plain(&event),
            Style::Tty => self.tty(&event),
        }
    }

    /// Remove what is left of live bars.
    pub fn finish(&self) {
        for (_, bar) in self.state().bars.drain() {
            bar.finish_and_clear();
        }
    }

    fn words(&self) -> (&'static str, &'static str, &'static str) {
        match self.direction {
            Direction::Pull => ("pulling", "pulled", "already in the store"),
            Direction::Push => ("pushing", "pushed", "already in the registry"),
        }
    }

    /// The line for an event that starts or ends a blob (None for bytes).
    fn line(&self, event: &TransferEvent) -> Option<String> {
        let (doing, did, present) = self.words();
        Some(match event {
            TransferEvent::Started { digest, total } => {
                format!("{doing} blob {digest} ({total} bytes)")
            }
            TransferEvent::Done { digest, total } => format!("{did} blob {digest} ({total} bytes)"),
            TransferEvent::Mounted {
                digest,
                total,
                from,
            } => format!("mounted blob {digest} ({total} bytes) from {from}"),
            TransferEvent::Skipped { digest, total } => {
                format!("skipped blob {digest} ({total} bytes): {present}")
            }
            TransferEvent::Bytes { .. } => return None,
        })
    }

    fn plain(&self, event: &TransferEvent) {
        let text = match event {
            TransferEvent::Bytes {
                digest,
                done,
                total,
            } => {
                let mut state = self.state();
                let now = Instant::now();
                let due = state
                    .printed
                    .get(digest)
                    .is_none_or(|t| now.duration_since(*t) >= Duration::from_secs(1));
                if !due || done == total {
                    return;
                }
                state.printed.insert(digest.clone(), now);
                format!("  {}: {done}/{total} bytes", short(digest))
            }
            other => {
                if !matches!(other, TransferEvent::Started { .. }) {
                    self.state().printed.remove(other.digest());
                }
                match self.line(other) {
                    Some(l) => l,
                    None => return,
                }
            }
        };
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    fn json(&self, event: &TransferEvent) {
        let direction = match self.direction {
            Direction::Pull => "pull",
            Direction::Push => "push",
        };
        let mut obj = match event {
            TransferEvent::Started { total, .. } => {
                serde_json::json!({ "event": "started", "total": total })
            }
            TransferEvent::Bytes { done, total, .. } => {
                serde_json::json!({ "event": "bytes", "done": done, "total": total })
            }
            TransferEvent::Done { total, .. } => {
                serde_json::json!({ "event": "done", "total": total })
            }
            TransferEvent::Mounted { total, from, .. } => {
                serde_json::json!({ "event": "mounted", "total": total, "from": from })
            }
            TransferEvent::Skipped { total, .. } => {
                serde_json::json!({ "event": "skipped", "total": total })
            }
        };
        obj["digest"] = event.digest().to_string().into();
        obj["direction"] = direction.into();
        let _ = writeln!(std::io::stderr().lock(), "{obj}");
    }

    fn tty(&self, event: &TransferEvent) {
        let mut state = self.state();
        let Some(multi) = state.multi.clone() else {
            return;
        };
        match event {
            TransferEvent::Started { digest, total } => {
                let bar = multi.add(ProgressBar::new(*total));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(format!("{} {}", self.words().0, short(digest)));
                if let Some(old) = state.bars.insert(digest.clone(), bar) {
                    old.finish_and_clear();
                }
            }
            TransferEvent::Bytes { digest, done, .. } => {
                if let Some(bar) = state.bars.get(digest) {
                    bar.set_position(*done);
                }
            }
            other => {
                if let Some(bar) = state.bars.remove(other.digest()) {
                    bar.finish_and_clear();
                }
                if let Some(line) = self.line(other) {
                    let _ = multi.println(line);
                }
            }
        }
    }
}

/// `sha256:` and the first 12 hex digits.
fn short(digest: &Digest) -> String {
    let s = digest.to_string();
    s.chars().take("sha256:".len() + 12).collect()
}

/// Run `seal tag`: every target names the source's manifest.
pub fn tag(root: &Path, args: TagArgs) -> Result<(), Failure> {
    let source = image_name(&args.source)?;
    let targets = args
        .targets
        .iter()
        .map(|t| image_name(t))
        .collect::<Result<Vec<_>, _>>()?;
    if !root.join("db").exists() {
        return Err(anyhow::anyhow!("no image named {source} in the store").into());
    }
    let store = open_store(root)?;
    let record = store
        .image(&source)?
        .ok_or_else(|| anyhow::anyhow!("no image named {source} in the store"))?;
    for target in &targets {
        store.set_image(target, &record.manifest)?;
        outln!("tagged: {target}")?;
    }
    Ok(())
}

/// A registry as given on the command line: `host[:port]`, maybe with a scheme or a path.
fn registry_host(input: &str) -> Result<String, Failure> {
    let host = input
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(Failure::Usage(format!("invalid registry `{input}`")));
    }
    Ok(match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        h => h.into(),
    })
}

/// Run `seal login`: check the credentials against the registry, then save them (through the
/// registry's credential helper when one is configured).
pub fn login(args: LoginArgs, options: &RegistryOptions) -> Result<(), Failure> {
    let registry = registry_host(&args.registry)?;
    let password = match (args.password, args.password_stdin) {
        (Some(p), false) => p,
        (None, true) => {
            let mut p = String::new();
            std::io::stdin().read_to_string(&mut p)?;
            p.trim_end_matches(['\n', '\r']).to_string()
        }
        _ => {
            return Err(Failure::Usage(
                "give the password with -p PASSWORD or --password-stdin".into(),
            ))
        }
    };
    if password.is_empty() {
        return Err(Failure::Usage("the password is empty".into()));
    }
    let credentials = Credentials {
        username: args.username,
        password,
    };
    let client = Client::new(options.clone());
    client.check_login(&registry, credentials.clone())?;
    let saved = auth::save_credentials(&registry, &credentials)?;
    outln!("Login Succeeded (credentials saved in {saved})")?;
    Ok(())
}

/// Run `seal logout`: erase the credentials from every helper and auth file that has them.
pub fn logout(args: LogoutArgs) -> Result<(), Failure> {
    let registry = registry_host(&args.registry)?;
    if auth::erase(&registry)? {
        outln!("Removed login credentials for {registry}")?;
        Ok(())
    } else {
        Err(anyhow::anyhow!("not logged in to {registry}").into())
    }
}
