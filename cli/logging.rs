//! The `tracing` subscriber of the process: log lines through the progress renderer, and the
//! trace recorder when a command was given `--trace`.

/// Logs per `SEAL_LOG` (default: warnings) through the progress renderer; with `trace`, also
/// the trace recorder (`seal build --trace`), which only then listens to the `seal_trace`
/// spans: without it they cost one disabled-callsite check each.
pub fn init(trace: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_env("SEAL_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
    };
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    if !trace {
        tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(crate::progress::LogWriter)
            .with_ansi(ansi)
            .without_time()
            .with_target(false)
            .init();
        return;
    }
    let log = tracing_subscriber::fmt::layer()
        .with_writer(crate::progress::LogWriter)
        .with_ansi(ansi)
        .without_time()
        .with_target(false)
        .with_filter(filter());
    let recorder =
        crate::trace::start().with_filter(tracing_subscriber::filter::filter_fn(|meta| {
            meta.target() == crate::trace::TARGET
        }));
    tracing_subscriber::registry()
        .with(log)
        .with(recorder)
        .init();
}
