//! `seal build --trace FILE`: the build's `tracing` spans of target `seal_trace` as a Chrome
//! trace-event file (Perfetto, `chrome://tracing`).
//!
//! The engine, solver and store open a span around each phase of a step (context scan,
//! hashing, write layer, unpack, RUN, pull, push, cache lookups and saves). Without `--trace`
//! no layer listens to that target, so every span is one disabled-callsite check. With it,
//! [`TraceLayer`] keeps each span's enter/exit times and thread, and [`Recorder::write`]
//! turns them into complete events (`ph: "X"`, `ts`/`dur` in microseconds, `pid`/`tid`, the
//! span's fields as `args`), one track per OS thread named by `thread_name` metadata events.
//!
//! A span's `<phase>_us` fields are interleaved phases of one streaming pass (tar, hashing,
//! compression, blob write of a layer): they become back-to-back child slices at the start
//! of the span, with `"interleaved": true` in their args.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use serde_json::{json, Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The `tracing` target of every span a trace records.
pub const TARGET: &str = "seal_trace";

/// The order of a layer write's interleaved phases, as the bytes flow.
const PIPELINE: [&str; 4] = ["tar", "hashing", "compression", "blob_write"];

/// The recorder of this process, when `--trace` asked for one.
static RECORDER: OnceLock<Arc<Recorder>> = OnceLock::new();

/// Start recording (once per process); the returned layer goes into the subscriber.
pub fn start() -> TraceLayer {
    let recorder = RECORDER
        .get_or_init(|| {
            Arc::new(Recorder {
                started: Instant::now(),
                slices: Mutex::new(Vec::new()),
                threads: Mutex::new(BTreeMap::new()),
            })
        })
        .clone();
    TraceLayer { recorder }
}

/// The recorder, if [`start`] was called.
pub fn recorder() -> Option<Arc<Recorder>> {
    RECORDER.get().cloned()
}

/// Write the trace of a command that names no Definition nodes (`seal pull`, `seal push`) to
/// `path`, if one was asked for.
pub fn write_for(command: &str, path: Option<&Path>) -> Result<(), String> {
    let Some(path) = path else { return Ok(()) };
    let recorder = recorder().ok_or("--trace: the trace recorder did not start")?;
    recorder
        .write(path, command, &|_| None)
        .map_err(|e| format!("--trace: writing {}: {e}", path.display()))
}

/// Every finished span so far.
pub struct Recorder {
    started: Instant,
    slices: Mutex<Vec<Slice>>,
    /// Track number → thread name.
    threads: Mutex<BTreeMap<u64, String>>,
}

/// One stretch of time a span spent entered on one thread.
#[derive(Debug, Clone)]
pub struct Slice {
    pub name: String,
    /// Microseconds since the recorder started.
    pub ts: f64,
    pub dur: f64,
    pub tid: u64,
    pub args: Map<String, Value>,
}

impl Recorder {
    /// The slices recorded so far, in start order.
    pub fn slices(&self) -> Vec<Slice> {
        let mut slices = lock(&self.slices).clone();
        // Parents first: by start, then the longer one.
        slices.sort_by(|a, b| a.ts.total_cmp(&b.ts).then(b.dur.total_cmp(&a.dur)));
        slices
    }

    /// Write the trace of the command `process` (`seal build`) to `path`; `name_of(node)` says
    /// what a Definition node is.
    pub fn write(
        &self,
        path: &Path,
        process: &str,
        name_of: &dyn Fn(u64) -> Option<NodeLabel>,
    ) -> std::io::Result<()> {
        let document = self.document(process, name_of);
        let text = serde_json::to_vec(&document).map_err(std::io::Error::other)?;
        std::fs::write(path, text)
    }

    fn document(&self, process: &str, name_of: &dyn Fn(u64) -> Option<NodeLabel>) -> Value {
        let pid = std::process::id();
        let mut events = vec![json!({
            "ph": "M", "name": "process_name", "pid": pid, "tid": 0,
            "args": { "name": process },
        })];
        for (tid, name) in lock(&self.threads).iter() {
            events.push(json!({
                "ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                "args": { "name": format!("{name} #{tid}") },
            }));
            events.push(json!({
                "ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid,
                "args": { "sort_index": tid },
            }));
        }
        for slice in self.slices() {
            let mut args = slice.args.clone();
            let mut name = slice.name.clone();
            let mut category = "phase";
            let node = args.get("node").and_then(Value::as_u64);
            if let Some(label) = node.and_then(name_of) {
                if slice.name == "step" {
                    name = label.name;
                    category = if label.kubefile_step {
                        "step"
                    } else {
                        "vertex"
                    };
                }
                args.insert("step".into(), Value::String(label.step));
            } else if slice.name == "step" {
                category = "vertex";
            }
            // Interleaved phases: back to back from the span's start, in pipeline order, after
            // their parent (a viewer nests slices of equal start in file order).
            let mut children = Vec::new();
            let mut at = slice.ts;
            let mut phases: Vec<(String, f64)> = slice
                .args
                .iter()
                .filter_map(|(k, v)| Some((k.strip_suffix("_us")?.to_string(), v.as_f64()?)))
                .collect();
            phases.sort_by_key(|(phase, _)| {
                PIPELINE
                    .iter()
                    .position(|p| p == phase)
                    .unwrap_or(PIPELINE.len())
            });
            for (phase, micros) in phases {
                args.remove(&format!("{phase}_us"));
                let mut phase_args = json!({ "interleaved": true });
                if let Some(step) = args.get("step") {
                    phase_args["step"] = step.clone();
                }
                children.push(json!({
                    "ph": "X", "name": phase.replace('_', " "), "cat": "phase", "pid": pid,
                    "tid": slice.tid, "ts": at,
                    "dur": micros.min(slice.ts + slice.dur - at).max(0.0),
                    "args": phase_args,
                }));
                at += micros;
            }
            events.push(json!({
                "ph": "X", "name": name, "cat": category, "pid": pid, "tid": slice.tid,
                "ts": slice.ts, "dur": slice.dur, "args": args,
            }));
            events.extend(children);
        }
        json!({ "traceEvents": events, "displayTimeUnit": "ms" })
    }

    fn micros_since_start(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.started).as_secs_f64() * 1e6
    }
}

/// What a trace says about a Definition node.
pub struct NodeLabel {
    /// The name of the node's own slice: its Kubefile step (`[2/4] COPY dir1 a`), or what it
    /// does for one (`context scan: dir1 for [2/4] COPY dir1 a`).
    pub name: String,
    /// The Kubefile step it belongs to, in the args of each of its slices.
    pub step: String,
    /// A step `--progress` shows (category `step`; the others are `vertex`).
    pub kubefile_step: bool,
}

/// The `tracing` layer that feeds a [`Recorder`].
pub struct TraceLayer {
    recorder: Arc<Recorder>,
}

/// What the layer keeps per open span.
struct SpanData {
    fields: Map<String, Value>,
    /// Entered and not yet exited: (start, track).
    open: Vec<(Instant, u64)>,
    /// Finished stretches: (start, end, track).
    done: Vec<(Instant, Instant, u64)>,
}

impl<S> Layer<S> for TraceLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut JsonFields(&mut fields));
        if let Some(span) = ctx.span(id) {
            // A phase belongs to the step whose span encloses it.
            if !fields.contains_key("node") {
                let node = span.scope().skip(1).find_map(|parent| {
                    let extensions = parent.extensions();
                    extensions
                        .get::<SpanData>()
                        .and_then(|d| d.fields.get("node").cloned())
                });
                if let Some(node) = node {
                    fields.insert("node".into(), node);
                }
            }
            span.extensions_mut().insert(SpanData {
                fields,
                open: Vec::new(),
                done: Vec::new(),
            });
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(data) = span.extensions_mut().get_mut::<SpanData>() {
                values.record(&mut JsonFields(&mut data.fields));
            }
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let track = self.track();
        if let Some(span) = ctx.span(id) {
            if let Some(data) = span.extensions_mut().get_mut::<SpanData>() {
                data.open.push((Instant::now(), track));
            }
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let now = Instant::now();
        if let Some(span) = ctx.span(id) {
            if let Some(data) = span.extensions_mut().get_mut::<SpanData>() {
                if let Some((start, track)) = data.open.pop() {
                    data.done.push((start, now, track));
                }
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(data) = span.extensions_mut().remove::<SpanData>() else {
            return;
        };
        let mut slices = lock(&self.recorder.slices);
        for (start, end, tid) in data.done {
            let ts = self.recorder.micros_since_start(start);
            slices.push(Slice {
                name: span.name().to_string(),
                ts,
                dur: (self.recorder.micros_since_start(end) - ts).max(0.0),
                tid,
                args: data.fields.clone(),
            });
        }
    }
}

impl TraceLayer {
    /// This thread's track number, named on first use.
    fn track(&self) -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            static TRACK: Cell<u64> = const { Cell::new(0) };
        }
        TRACK.with(|track| {
            if track.get() == 0 {
                let id = NEXT.fetch_add(1, Ordering::Relaxed);
                track.set(id);
                let name = std::thread::current()
                    .name()
                    .map_or_else(|| "thread".to_string(), str::to_string);
                lock(&self.recorder.threads).insert(id, name);
            }
            track.get()
        })
    }
}

/// A span's fields as JSON values.
struct JsonFields<'a>(&'a mut Map<String, Value>);

impl Visit for JsonFields<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), json!(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), json!(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), json!(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), json!(value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), json!(format!("{value:?}")));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn spans_become_complete_events_with_interleaved_phases() {
        let layer = TraceLayer {
            recorder: Arc::new(Recorder {
                started: Instant::now(),
                slices: Mutex::new(Vec::new()),
                threads: Mutex::new(BTreeMap::new()),
            }),
        };
        let recorder = layer.recorder.clone();
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let step = tracing::info_span!(target: "seal_trace", "step", node = 3u32);
            step.in_scope(|| {
                let write = tracing::info_span!(
                    target: "seal_trace",
                    "write layer",
                    tar_us = tracing::field::Empty,
                    hashing_us = tracing::field::Empty
                );
                write.in_scope(|| std::thread::sleep(std::time::Duration::from_millis(3)));
                write.record("tar_us", 1000u64);
                write.record("hashing_us", 500u64);
            });
        });
        let name_of = |node: u64| {
            (node == 3).then(|| NodeLabel {
                name: "[2/2] COPY a b".into(),
                step: "[2/2] COPY a b".into(),
                kubefile_step: true,
            })
        };
        let doc = recorder.document("seal build", &name_of);
        let events = doc["traceEvents"].as_array().expect("an event array");
        let named = |n: &str| {
            events
                .iter()
                .find(|e| e["name"] == n && e["ph"] == "X")
                .unwrap_or_else(|| panic!("no slice {n} in {events:?}"))
                .clone()
        };
        let step = named("[2/2] COPY a b");
        let write = named("write layer");
        let (tar, hashing) = (named("tar"), named("hashing"));
        assert_eq!(step["cat"], "step");
        assert!(write["dur"].as_f64().unwrap() >= 3000.0);
        assert!(step["dur"].as_f64().unwrap() >= write["dur"].as_f64().unwrap());
        assert_eq!(tar["ts"], write["ts"]);
        assert_eq!(tar["dur"], 1000.0);
        assert_eq!(
            hashing["ts"].as_f64(),
            Some(write["ts"].as_f64().unwrap() + 1000.0)
        );
        assert_eq!(tar["tid"], write["tid"]);
        assert!(write["args"].get("tar_us").is_none());
        assert_eq!(
            write["args"]["step"], "[2/2] COPY a b",
            "a phase names its step"
        );
        assert!(events
            .iter()
            .any(|e| e["ph"] == "M" && e["name"] == "thread_name"));
    }
}
