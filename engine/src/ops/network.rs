//! Registry work of the collection ops, a few requests at a time: a small rayon pool of its
//! own (the requests wait on the network, not the CPU), stopped by a cancelled build.

use rayon::prelude::*;
use seal_solver::ExecContext;

use crate::EngineError;

/// `f` over `items` on at most `workers` threads, results in order; the first failure (or a
/// cancelled build) stops handing out work.
pub fn try_map<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    cx: &ExecContext,
    f: impl Fn(&T) -> Result<R, EngineError> + Sync,
) -> Result<Vec<R>, EngineError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers.clamp(1, items.len()))
        .build()
        .map_err(|e| EngineError::Internal(format!("starting registry workers: {e}")))?;
    pool.install(|| {
        items
            .par_iter()
            .map(|item| {
                if cx.is_cancelled() {
                    return Err(EngineError::Cancelled);
                }
                f(item)
            })
            .collect()
    })
}
