//! The one way seal runs blocking work on several threads: at most `workers` items at once on
//! scoped threads, results in item order, optionally stopping after a failure.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Run `work` on every item, at most `workers` at once; results in item order. When `stop`
/// says a finished item's result ends the run, no new item starts, and the items that never
/// started have no result (the returned list is shorter than `items`).
pub fn map_ordered<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    stop: impl Fn(&R) -> bool + Sync,
    work: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let workers = workers.clamp(1, items.len().max(1));
    if workers == 1 {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let result = work(item);
            let end = stop(&result);
            out.push(result);
            if end {
                break;
            }
        }
        return out;
    }
    let next = AtomicUsize::new(0);
    let stopped = AtomicBool::new(false);
    let results: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while !stopped.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = work(item);
                    if stop(&result) {
                        stopped.store(true, Ordering::Relaxed);
                    }
                    results
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push((i, result));
                }
            });
        }
    });
    let mut results = results
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_item_order_and_a_stop_starts_nothing_new() {
        let items: Vec<u32> = (0..50).collect();
        let out = map_ordered(&items, 4, |_| false, |i| i * 2);
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        // One worker: everything after the stopping item is left out.
        let out = map_ordered(&items, 1, |r: &u32| *r == 3, |i| *i);
        assert_eq!(out, [0, 1, 2, 3]);
        // Several: the stopping item is there, and not every item ran.
        let out = map_ordered(
            &items,
            3,
            |r: &u32| *r == 5,
            |i| {
                std::thread::sleep(std::time::Duration::from_millis(2));
                *i
            },
        );
        assert!(out.contains(&5) && out.len() < items.len(), "{out:?}");
    }
}
