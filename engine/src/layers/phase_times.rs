//! Where the time of one streaming layer write goes (tar, hashing, compression, blob write),
//! measured only while a trace is recorded (`seal build --trace`).
//!
//! The four phases interleave chunk by chunk in one pass, so each is a sum of the moments
//! spent in it; [`PhaseTimes::record`] writes the sums as `<phase>_us` fields of the layer's
//! span, which the trace shows as back-to-back slices. With no trace, every measurement is
//! one branch on a `bool`.

use std::cell::Cell;
use std::io::{self, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use seal_store::BlobWriter;

/// Sums of time per phase of one layer write.
#[derive(Debug, Default)]
pub struct PhaseTimes {
    on: bool,
    /// blake3 re-hashing of file bytes, sha256 of the tar (diffID) and of store blobs.
    pub hashing: Cell<Duration>,
    /// Inside the compressor, including the blob writes it makes.
    pub compressing: Cell<Duration>,
    /// Inside the blob writer (its sha256, the file writes).
    pub blob_writing: Cell<Duration>,
    /// The blob's commit (fsync, rename).
    pub committing: Cell<Duration>,
    /// Uncompressed tar bytes.
    pub tar_bytes: Cell<u64>,
}

impl PhaseTimes {
    /// Sums that measure only when `on`.
    pub fn new(on: bool) -> Rc<PhaseTimes> {
        Rc::new(PhaseTimes {
            on,
            ..PhaseTimes::default()
        })
    }

    /// Run `f`, adding its duration to `slot` when measuring.
    pub fn time<T>(&self, slot: &Cell<Duration>, f: impl FnOnce() -> T) -> T {
        if !self.on {
            return f();
        }
        let started = Instant::now();
        let result = f();
        slot.set(slot.get() + started.elapsed());
        result
    }

    /// Record the phases of a write that took `total` on `span` (fields `tar_us`,
    /// `hashing_us`, `compression_us`, `blob_write_us`, `bytes`): tar is what the others
    /// leave of the total (framing, reading the files).
    pub fn record(&self, span: &tracing::Span, total: Duration) {
        if !self.on {
            return;
        }
        let (hashing, compressing, writing, committing) = (
            self.hashing.get(),
            self.compressing.get(),
            self.blob_writing.get(),
            self.committing.get(),
        );
        let tar = total.saturating_sub(hashing + compressing + committing);
        let compression = compressing.saturating_sub(writing);
        span.record("tar_us", micros(tar));
        span.record("hashing_us", micros(hashing));
        span.record("compression_us", micros(compression));
        span.record("blob_write_us", micros(writing + committing));
        span.record("bytes", self.tar_bytes.get());
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The blob writer at the end of the pipeline, timed.
pub struct TimedBlobWriter {
    pub inner: BlobWriter,
    pub times: Rc<PhaseTimes>,
}

impl Write for TimedBlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (inner, times) = (&mut self.inner, &self.times);
        times.time(&times.blob_writing, || inner.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        let (inner, times) = (&mut self.inner, &self.times);
        times.time(&times.blob_writing, || inner.flush())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_measured_when_off() {
        let times = PhaseTimes::new(false);
        times.time(&times.hashing, || {
            std::thread::sleep(Duration::from_millis(2))
        });
        assert_eq!(times.hashing.get(), Duration::ZERO);
        let on = PhaseTimes::new(true);
        on.time(&on.hashing, || std::thread::sleep(Duration::from_millis(2)));
        assert!(on.hashing.get() >= Duration::from_millis(2));
    }
}
