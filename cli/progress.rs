//! Progress renderers: a live tty view, BuildKit-style plain lines, or JSON events.
//!
//! Events come from the solver with Definition node indices; only nodes with a description
//! (the Kubefile's steps) are shown. Each shown node gets a number `#N` in order of first
//! appearance, as BuildKit does. A quiet node (image collection) is shown only once it logs
//! or fails, and never counted as a step.
//!
//! Every warning of a build goes through the renderer: the frontend's (unused build-args),
//! a vertex's ([`EventKind::Warning`]), and anything logged at WARN level through `tracing`
//! while the build runs ([`warnings_to`]). So `--progress json` stays one JSON object per
//! line, and the tty view prints warnings above its spinners instead of through them.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use seal_solver::{EventKind, ProgressEvent};
use tokio::sync::mpsc::UnboundedSender;

use crate::args::ProgressMode;

/// The resolved output style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Tty,
    Plain,
    Json,
}

impl Style {
    /// Resolve `auto` against whether stderr is a terminal. `tty` without a terminal falls
    /// back to plain: a live view drawn into a pipe or file would show nothing at all.
    pub fn from_mode(mode: ProgressMode) -> Style {
        match mode {
            ProgressMode::Plain => Style::Plain,
            ProgressMode::Json => Style::Json,
            ProgressMode::Tty | ProgressMode::Auto => {
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
    /// Steps numbered by earlier graphs.
    numbered: usize,
    bars: HashMap<usize, ProgressBar>,
    multi: Option<MultiProgress>,
    started: Instant,
    pub tally: Tally,
}

impl Renderer {
    /// A renderer with no nodes yet (warnings can be shown before the graph exists).
    pub fn new(style: Style) -> Renderer {
        let multi = (style == Style::Tty)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Renderer {
            style,
            names: Vec::new(),
            quiet: Vec::new(),
            speaking: std::collections::HashSet::new(),
            numbers: HashMap::new(),
            numbered: 0,
            bars: HashMap::new(),
            multi,
            started: Instant::now(),
            tally: Tally::default(),
        }
    }

    /// The nodes to show: `names` (index = Definition node; `None` is not shown) and which of
    /// them are quiet.
    /// A later graph (the next platform of a multi-platform build) numbers its steps on from
    /// the last number shown.
    pub fn set_nodes(&mut self, names: Vec<Option<String>>, quiet: Vec<bool>) {
        self.names = names;
        self.quiet = quiet;
        self.numbered += self.numbers.len();
        self.numbers.clear();
        self.speaking.clear();
    }

    /// The resolved style.
    pub fn style(&self) -> Style {
        self.style
    }

    /// A warning that belongs to no step (`build-arg X was not consumed`, a `tracing` warning).
    pub fn warning(&mut self, message: &str) {
        match self.style {
            Style::Json => {
                let line = serde_json::json!({
                    "time": unix_now(),
                    "event": "warning",
                    "message": message,
                });
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            Style::Plain => {
                let _ = writeln!(std::io::stderr().lock(), "warning: {message}");
            }
            Style::Tty => self.above_bars(&format!("warning: {message}")),
        }
    }

    /// Rendered diagnostics (a Kubefile error under its source line).
    pub fn diagnostics(&mut self, text: &str) {
        diagnostics(self.style, text);
    }

    /// The error that ends the build, as a JSON `error` event (other styles print it plainly
    /// through [`crate::failure::Failure`]).
    pub fn error(&mut self, message: &str) {
        diagnostics(self.style, &format!("error: {message}\n"));
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
                EventKind::Log(_)
                | EventKind::Warning(_)
                | EventKind::Bytes { .. }
                | EventKind::Error(_)
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
        let next = self.numbered + self.numbers.len() + 1;
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
            EventKind::Warning(message) => writeln!(err, "#{n} WARNING: {message}"),
            EventKind::Bytes { .. } => Ok(()),
            EventKind::Done { elapsed } => writeln!(err, "#{n} DONE {}", secs(*elapsed)),
            EventKind::Error(msg) if msg == "cancelled" => writeln!(err, "#{n} CANCELED"),
            EventKind::Error(msg) => writeln!(err, "#{n} ERROR: {msg}"),
            EventKind::Explain(reason) => writeln!(err, "#{n} WHY: {reason}"),
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
            EventKind::Warning(message) => {
                serde_json::json!({ "event": "warning", "message": message })
            }
            EventKind::Bytes { done, total } => {
                serde_json::json!({ "event": "bytes", "done": done, "total": total })
            }
            EventKind::Done { elapsed } => {
                serde_json::json!({ "event": "done", "elapsed": elapsed.as_secs_f64() })
            }
            EventKind::Error(msg) => serde_json::json!({ "event": "error", "message": msg }),
            EventKind::Explain(reason) => {
                serde_json::json!({ "event": "explain", "reason": reason })
            }
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
                // `wide_msg` takes what the spinner and the clock leave of the line, and cuts
                // a long step title to fit: a line wider than the terminal would wrap and
                // break the redraw.
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {wide_msg} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                bar.set_message(line);
                bar.enable_steady_tick(Duration::from_millis(100));
                self.bars.insert(node, bar);
            }
            EventKind::Cached => self.status_line(n, name, "CACHED"),
            EventKind::Log(text) => self.above_bars(&format!("  #{n} {text}")),
            EventKind::Warning(message) => self.above_bars(&format!("  #{n} WARNING: {message}")),
            EventKind::Explain(reason) => self.above_bars(&format!("  #{n} why: {reason}")),
            EventKind::Bytes { .. } => {}
            EventKind::Done { elapsed } => {
                if let Some(bar) = self.bars.remove(&node) {
                    bar.finish_and_clear();
                }
                self.status_line(n, name, &format!("DONE {}", secs(*elapsed)));
            }
            EventKind::Error(msg) => {
                if let Some(bar) = self.bars.remove(&node) {
                    bar.finish_and_clear();
                }
                self.status_line(n, name, &format!("ERROR: {msg}"));
            }
        }
    }

    /// A line printed above the live spinners, cut to the terminal's width (a wrapped line
    /// would shift the redraw).
    fn above_bars(&self, text: &str) {
        let Some(multi) = &self.multi else { return };
        let _ = multi.println(cut(text, terminal_width()));
    }

    /// `  #N <step> <STATUS>` above the spinners: a long step title is cut so that the status
    /// (CACHED, DONE 0.12s, ERROR: ...) stays on screen.
    fn status_line(&self, n: usize, name: &str, status: &str) {
        self.above_bars(&fit_status(
            &format!("  #{n} "),
            name,
            status,
            terminal_width(),
        ));
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

/// Text for the user about a failure: as it is, or as one JSON `error` event in json style.
pub fn diagnostics(style: Style, text: &str) {
    if style == Style::Json {
        let line = serde_json::json!({
            "time": unix_now(),
            "event": "error",
            "message": text.trim_end(),
        });
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    } else {
        crate::output::stderr_text(text);
    }
}

/// Seconds since the epoch, as JSON events carry them.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The terminal's width (unbounded when unknown).
fn terminal_width() -> usize {
    console::Term::stderr()
        .size_checked()
        .map(|(_, cols)| usize::from(cols))
        .unwrap_or(usize::MAX)
}

/// `{prefix}{name} {status}` in at most `width` columns: `name` gives way first (cut with
/// `…`), then the status's tail (a long error message).
fn fit_status(prefix: &str, name: &str, status: &str, width: usize) -> String {
    let fixed = console::measure_text_width(prefix) + 1 + console::measure_text_width(status);
    // Keep at least a few characters of the name so the line still says which step it is.
    let room = width.saturating_sub(fixed).max(12);
    cut(&format!("{prefix}{} {status}", cut(name, room)), width)
}

/// `text` in at most `width` columns, ending in `…` when cut.
fn cut(text: &str, width: usize) -> String {
    if console::measure_text_width(text) <= width {
        return text.to_string();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = console::measure_text_width(c.encode_utf8(&mut [0; 4]));
        if used + w + 1 > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push('…');
    out
}

fn secs(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}

/// Where `tracing` warnings go while a build renders its progress (`None`: to stderr).
static WARNING_SINK: Mutex<Option<UnboundedSender<String>>> = Mutex::new(None);

/// Send WARN and ERROR `tracing` events to `sink` (a build's renderer reads it) until the
/// returned guard is dropped.
pub fn warnings_to(sink: UnboundedSender<String>) -> SinkGuard {
    *lock_sink() = Some(sink);
    SinkGuard
}

/// Restores `tracing` output to stderr when dropped.
pub struct SinkGuard;

impl Drop for SinkGuard {
    fn drop(&mut self) {
        *lock_sink() = None;
    }
}

fn lock_sink() -> std::sync::MutexGuard<'static, Option<UnboundedSender<String>>> {
    WARNING_SINK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `tracing`'s writer: warnings to the build's renderer when one listens, everything else
/// (and everything outside builds) to stderr, never panicking.
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine {
            text: Vec::new(),
            warning: false,
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LogLine {
        LogLine {
            text: Vec::new(),
            warning: *meta.level() <= tracing::Level::WARN,
        }
    }
}

/// One formatted `tracing` event, delivered when dropped.
pub struct LogLine {
    text: Vec<u8>,
    warning: bool,
}

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        if self.warning {
            if let Some(sink) = lock_sink().as_ref() {
                let text = String::from_utf8_lossy(&self.text);
                // The renderer says "warning" itself: drop the level the formatter wrote.
                let text = text.trim();
                let text = text
                    .strip_prefix("WARN")
                    .or_else(|| text.strip_prefix("ERROR"))
                    .unwrap_or(text)
                    .trim_start();
                if sink.send(text.to_string()).is_ok() {
                    return;
                }
            }
        }
        let _ = std::io::stderr().lock().write_all(&self.text);
    }
}

#[cfg(test)]
mod tests {
    use super::fit_status;

    #[test]
    fn a_long_step_title_gives_way_to_its_status() {
        let name = "[2/4] COPY dir1 /data/with/a/rather/long/destination/directory/name/to/cut";
        let line = fit_status("  #2 ", name, "CACHED", 80);
        assert!(line.ends_with("… CACHED"), "{line}");
        assert_eq!(console::measure_text_width(&line), 80);
        let short = fit_status("  #3 ", "[3/4] RUN true", "DONE 0.12s", 80);
        assert_eq!(short, "  #3 [3/4] RUN true DONE 0.12s");
        // A narrow terminal still names the step, and never exceeds its width.
        let narrow = fit_status("  #2 ", name, "ERROR: a very long message", 30);
        assert!(narrow.starts_with("  #2 [2/4] COPY"), "{narrow}");
        assert!(console::measure_text_width(&narrow) <= 30, "{narrow}");
    }
}
