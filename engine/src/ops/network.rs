//! Registry work of the collection ops, a few requests at a time (the store's
//! `parallel::map_ordered`: the requests wait on the network, not the CPU), stopped by a
//! cancelled build.

use seal_solver::ExecContext;

use crate::EngineError;

/// `f` over every item on at most `workers` threads, results in order. A failure does not
/// stop the others: with 50 images offline the user learns of all 50 in one build. One
/// failure is returned as it is; several as one [`EngineError::Collect`] listing each.
/// A cancelled build stops handing out work.
pub fn map_all<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    cx: &ExecContext,
    f: impl Fn(&T) -> Result<R, EngineError> + Sync,
) -> Result<Vec<R>, EngineError> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let results = seal_store::parallel::map_ordered(
        items,
        workers,
        |r: &Result<R, EngineError>| matches!(r, Err(EngineError::Cancelled)),
        |item| {
            if cx.is_cancelled() {
                return Err(EngineError::Cancelled);
            }
            f(item)
        },
    );
    let mut done = Vec::with_capacity(results.len());
    let mut failed = Vec::new();
    for result in results {
        match result {
            Ok(r) => done.push(r),
            Err(EngineError::Cancelled) => return Err(EngineError::Cancelled),
            Err(e) => failed.push(e),
        }
    }
    match failed.len() {
        0 => Ok(done),
        1 => Err(failed.remove(0)),
        n => Err(EngineError::Collect(
            std::iter::once(format!("{n} of {} images failed:", items.len()))
                .chain(failed.iter().map(|e| e.to_string()))
                .collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_is_reported_once() {
        let cx = ExecContext::detached();
        let items = [1, 2, 3, 4];
        let out = map_all(&items, 2, &cx, |i| {
            if i % 2 == 0 {
                Err(EngineError::Pull {
                    reference: format!("img{i}"),
                    reason: "offline".into(),
                })
            } else {
                Ok(*i)
            }
        });
        let Err(EngineError::Collect(lines)) = out else {
            panic!("expected a list of failures, got {out:?}");
        };
        assert_eq!(
            lines,
            [
                "2 of 4 images failed:",
                "cannot pull img2: offline",
                "cannot pull img4: offline"
            ]
        );
        let one = map_all(&items, 2, &cx, |i| {
            if *i == 3 {
                Err(EngineError::Internal("three".into()))
            } else {
                Ok(())
            }
        });
        assert!(matches!(one, Err(EngineError::Internal(_))));
        assert_eq!(
            map_all(&items, 3, &cx, |i| Ok(i * 2)).unwrap(),
            [2, 4, 6, 8]
        );
    }
}
