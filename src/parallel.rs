//! Fetching many objects at once: a few worker threads run requests while
//! the caller consumes the results one at a time, so a remote store's
//! latency is overlapped and memory stays bounded by the channel.

use std::sync::Mutex;
use std::sync::mpsc::sync_channel;

use crate::error::Result;

/// Runs `work` on every item with `workers` threads and hands each item
/// with its result to `consume`, in completion order. At most about
/// `2 * workers` results wait at once. Stops at `consume`'s first error.
pub(crate) fn for_each_bounded<T, R>(
    items: Vec<T>,
    workers: usize,
    work: impl Fn(&T) -> R + Sync,
    mut consume: impl FnMut(T, R) -> Result<()>,
) -> Result<()>
where
    T: Send,
    R: Send,
{
    if items.is_empty() {
        return Ok(());
    }
    let workers = workers.clamp(1, items.len());
    if workers == 1 {
        for item in items {
            let r = work(&item);
            consume(item, r)?;
        }
        return Ok(());
    }
    let queue = Mutex::new(items.into_iter());
    let (tx, rx) = sync_channel::<(T, R)>(2 * workers);
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let (queue, work) = (&queue, &work);
            s.spawn(move || {
                loop {
                    let Some(item) = queue.lock().expect("work queue").next() else {
                        break;
                    };
                    let r = work(&item);
                    // The consumer stopped: nobody wants the rest.
                    if tx.send((item, r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (item, r) in &rx {
            if let Err(e) = consume(item, r) {
                // Workers see the closed channel at their next send and
                // stop; the queue is emptied so none starts another item.
                queue.lock().expect("work queue").by_ref().for_each(drop);
                drop(rx);
                return Err(e);
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn every_item_once_and_errors_stop_early() {
        let mut seen = Vec::new();
        for_each_bounded(
            (0..100).collect(),
            4,
            |i| i * 2,
            |i, r| {
                assert_eq!(r, i * 2);
                seen.push(i);
                Ok(())
            },
        )
        .unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());

        let mut n = 0;
        let r = for_each_bounded(
            (0..1000).collect::<Vec<u32>>(),
            3,
            |i| *i,
            |_, _| {
                n += 1;
                if n == 5 {
                    return Err(Error::Internal("stop".into()));
                }
                Ok(())
            },
        );
        assert!(r.is_err());
        assert_eq!(n, 5);
    }
}
