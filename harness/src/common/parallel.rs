//! Work on a list with a few threads, results in the list's order: the
//! suite's scenarios and the matrix's guests both run this way.

use std::ops::ControlFlow;
use std::sync::{Mutex, PoisonError};

/// Runs `work` on `items` with up to `jobs` threads, each taking the next
/// item when it is free; returns the results of the items that ran, in
/// item order. A thread takes no more items once `stop()` holds or its
/// `work` returned `Break` (whose result is kept).
pub fn map_in_order<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    stop: &(dyn Fn() -> bool + Sync),
    work: impl Fn(&T) -> ControlFlow<R, R> + Sync,
) -> Vec<R> {
    let next = Mutex::new(0usize);
    let done: Mutex<Vec<(usize, R)>> = Mutex::new(vec![]);
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                while !stop() {
                    let i = {
                        let mut n = next.lock().unwrap_or_else(PoisonError::into_inner);
                        *n += 1;
                        *n - 1
                    };
                    let Some(item) = items.get(i) else { break };
                    let (r, go_on) = match work(item) {
                        ControlFlow::Continue(r) => (r, true),
                        ControlFlow::Break(r) => (r, false),
                    };
                    done.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((i, r));
                    if !go_on {
                        break;
                    }
                }
            });
        }
    });
    let mut v = done.into_inner().unwrap_or_else(PoisonError::into_inner);
    v.sort_by_key(|(i, _)| *i);
    v.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn results_keep_the_items_order_whatever_finishes_first() {
        let items: Vec<u64> = (0..20).collect();
        // Earlier items sleep longer, so they finish last.
        let out = map_in_order(&items, 4, &|| false, |i| {
            std::thread::sleep(std::time::Duration::from_millis(20 - i));
            ControlFlow::Continue(i * 10)
        });
        assert_eq!(out, (0..20).map(|i| i * 10).collect::<Vec<_>>());
    }

    #[test]
    fn a_break_or_a_stop_ends_the_taking_of_items() {
        let items: Vec<u32> = (0..10).collect();
        // One thread: a Break at item 3 keeps its result, takes no more.
        let out = map_in_order(&items, 1, &|| false, |i| {
            if *i == 3 {
                ControlFlow::Break(*i)
            } else {
                ControlFlow::Continue(*i)
            }
        });
        assert_eq!(out, vec![0, 1, 2, 3]);
        // A stop seen before the first item: nothing runs.
        let ran = AtomicUsize::new(0);
        let out: Vec<u32> = map_in_order(&items, 2, &|| true, |i| {
            ran.fetch_add(1, Ordering::SeqCst);
            ControlFlow::Continue(*i)
        });
        assert!(out.is_empty());
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    }
}
