//! Progress renderers: a live tty view, BuildKit-style plain lines, or JSON events.
//!
//! Events come from the solver with Definition node indices; only nodes with a description
//! (the Kubefile's steps) are shown. Each shown node gets a number `#N` in order of first
//! appearance, as BuildKit does. A quiet node (image collection) is shown only once it logs
//! or fails, and never counted as a step.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant, UNIX_EPOCH};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use seal_solver::{EventKind, ProgressEvent};

use crate::args::ProgressMode;

/// The resolved output style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Tty,
    Plain,
    Json,
}

impl Style {
    /// Resolve `auto` against whether stderr is a terminal.
    pub fn from_mode(mode: ProgressMode) -> Style {
        match mode {
            ProgressMode::Tty => Style::Tty,
            ProgressMode::Plain => Style::Plain,
            ProgressMode::Json => Style::Json,
            ProgressMode::Auto => {
                if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                    Style::Tty
                } else {
                    Style::Plain
                }
            }
        }
    }
}

/// Counts of what the build did, for the closing summary line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub cached: usize,
    pub executed: usize,
}

/// Turns events into output on stderr.
pub struct Renderer {
    style: Style,
    names: Vec<Option<String>>,
    /// Per node: shown only when it logs or fails.
    quiet: Vec<bool>,
    /// Quiet nodes that have said something (and are shown from then on).
    speaking: std::collections::HashSet<usize>,
    numbers: HashMap<usize, usize>,
    bars: HashMap<usize, ProgressBar>,
    multi: Option<MultiProgress>,
    started: Instant,
    pub tally: Tally,
}

impl Renderer {
    /// A renderer for nodes described by `names` (index = Definition node).
    pub fn new(style: Style, names: Vec<Option<String>>, quiet: Vec<bool>) -> Renderer {
        let multi = (style == Style::Tty)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Renderer {
            style,
            names,
            quiet,
            speaking: std::collections::HashSet::new(),
            numbers: HashMap::new(),
            bars: HashMap::new(),
            multi,
            started: Instant::now(),
            tally: Tally::default(),
        }
    }

    /// Render one event.
    pub fn handle(&mut self, event: &ProgressEvent) {
        let node = event.node.0 as usize;
        let Some(Some(name)) = self.names.get(node).cloned() else {
            return;
        };
        if self.quiet.get(node).copied().unwrap_or(false) {
            match &event.kind {
                EventKind::Started | EventKind::Cached => return,
                EventKind::Done { .. } if !self.speaking.contains(&node) => return,
                EventKind::Log(_) | EventKind::Bytes { .. } | EventKind::Error(_)
                    if self.speaking.insert(node) =>
                {
                    let started = ProgressEvent {
                        node: event.node,
                        at: event.at,
                        kind: EventKind::Started,
                    };
                    self.render(node, &name, &started);
                }
                _ => {}
            }
        } else {
            match &event.kind {
                EventKind::Cached => self.tally.cached += 1,
                EventKind::Started => self.tally.executed += 1,
                _ => {}
            }
        }
        self.render(node, &name, event);
    }

    fn render(&mut self, node: usize, name: &str, event: &ProgressEvent) {
        let next = self.numbers.len() + 1;
        let number = *self.numbers.entry(node).or_insert(next);
        match self.style {
            Style::Json => self.json(number, name, event),
            Style::Plain => self.plain(number, name, &event.kind),
            Style::Tty => self.tty(number, node, name, &event.kind),
        }
    }

    fn plain(&self, n: usize, name: &str, kind: &EventKind) {
        let mut err = std::io::stderr().lock();
        let _ = match kind {
            EventKind::Started => writeln!(err, "#{n} {name}"),
            EventKind::Cached => writeln!(err, "#{n} {name}\n#{n} CACHED"),
            EventKind::Log(line) => writeln!(err, "#{n} {line}"),
            EventKind::Bytes { .. } => Ok(()),
            EventKind::Done { elapsed } => writeln!(err, "#{n} DONE {}", secs(*elapsed)),
            EventKind::Error(msg) if msg == "cancelled" => writeln!(err, "#{n} CANCELED"),
            EventKind::Error(msg) => writeln!(err, "#{n} ERROR: {msg}"),
        };
    }

    fn json(&self, n: usize, name: &str, event: &ProgressEvent) {
        let time = event
            .at
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let mut obj = serde_json::json!({ "time": time, "vertex": n, "name": name });
        let fields = match &event.kind {
            EventKind::Started => serde_json::json!({ "event": "started" }),
            EventKind::Cached => serde_json::json!({ "event": "cached" }),
            EventKind::Log(line) => serde_json::json!({ "event": "log", "line": line }),
            EventKind::Bytes { done, total } => {
                serde_json::json!({ "event": "bytes", "done": done, "total": total })
            }
            EventKind::Done { elapsed } => {
                serde_json::json!({ "event": "done", "elapsed": elapsed.as_secs_f64() })
            }
            EventKind::Error(msg) => serde_json::json!({ "event": "error", "message": msg }),
        };
        if let (Some(o), Some(f)) = (obj.as_object_mut(), fields.as_object()) {
            o.extend(f.clone());
        }
        let _ = writeln!(std::io::stderr().lock(), "{obj}");
    }

    fn tty(&mut self, n: usize, node: usize, name: &str, kind: &EventKind) {
        let Some(multi) = &self.multi else { return };
        let line = format!("#{n} {name}");
        match kind {
            EventKind::Started => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(line);
                bar.enable_steady_tick(Duration::from_millis(100));
                self.bars.insert(node, bar);
            }
            EventKind::Cached => {
                let _ = multi.println(format!("  {line} CACHED"));
            }
            EventKind::Log(text) => {
                let _ = multi.println(format!("  #{n} {text}"));
            }
            EventKind::Bytes { .. } => {}
            EventKind::Done { elapsed } => {
                if let Some(bar) = self.bars.remove(&node) {
                    bar.finish_and_clear();
                }
                let _ = multi.println(format!("  {line} DONE {}", secs(*elapsed)));
            }
            EventKind::Error(msg) => {
                if let Some(bar) = self.bars.remove(&node) {
                    bar.finish_and_clear();
                }
                let _ = multi.println(format!("  {line} ERROR: {msg}"));
            }
        }
    }

    /// Print the closing line.
    pub fn finish(&mut self, summary: &str) {
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
        }
        let elapsed = secs(self.started.elapsed());
        match self.style {
            Style::Json => {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "{}",
                    serde_json::json!({ "event": "summary", "message": summary, "elapsed": self.started.elapsed().as_secs_f64() })
                );
            }
            _ => {
                let _ = writeln!(std::io::stderr().lock(), "{summary} in {elapsed}");
            }
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}
