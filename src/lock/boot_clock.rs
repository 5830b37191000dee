//! A clock that keeps counting while the machine is suspended.
//!
//! A lock holder must notice when it has not refreshed for half the stale
//! period. `Instant` is CLOCK_MONOTONIC on Linux, which stops during a
//! suspend: a laptop or VM paused for an hour would wake up believing it
//! refreshed a moment ago, while every other host has watched its lock go
//! unrefreshed and gc has deleted what it was writing. CLOCK_BOOTTIME
//! counts the suspend, so the holder sees the hour and gives the lock up.
//!
//! The readers' side needs no such clock: a reader that is suspended
//! watches less, never more, which only makes it wait longer.
#![allow(unsafe_code)]

use std::time::Duration;

/// A point on CLOCK_BOOTTIME.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct BootInstant(Duration);

impl BootInstant {
    pub fn now() -> BootInstant {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; clock_gettime writes
        // only into it. CLOCK_BOOTTIME exists on every Linux since 2.6.39.
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_BOOTTIME) failed");
        BootInstant(Duration::new(
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u32::try_from(ts.tv_nsec).unwrap_or(0),
        ))
    }

    pub fn elapsed(self) -> Duration {
        BootInstant::now().0.saturating_sub(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_moves_forward_with_the_monotonic_clock() {
        let a = BootInstant::now();
        let m = std::time::Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let (b, elapsed) = (a.elapsed(), m.elapsed());
        assert!(b >= Duration::from_millis(20), "{b:?}");
        // Without a suspend in between, the two clocks agree closely.
        assert!(
            b <= elapsed + Duration::from_millis(5),
            "{b:?} vs {elapsed:?}"
        );
    }
}
