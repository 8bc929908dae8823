//! Time: the wall clock, and the Kinesis store's clock (wall time plus how far tests have moved
//! it forward).
//!
//! Every time the Kinesis side reads (record arrival, retention cutoffs, shard close times,
//! iterator and status deadlines) comes from here, so moving one emulator's clock ages
//! everything in it consistently while other emulators in the same process keep real time.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, from the wall clock. DynamoDB reads it directly; the
/// Kinesis side reads time only through its store's [`Clock`], which tests can move forward.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Wall time shifted by an offset that only grows.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    /// Milliseconds since the Unix epoch, as this emulator sees them.
    pub(crate) fn now_ms(&self) -> i64 {
        now_ms().saturating_add(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves the clock forward by `by`, as if that much time had passed.
    pub(crate) fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let _ = self
            .offset_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |offset| {
                Some(offset.saturating_add(by))
            });
    }

    /// Moves the clock forward to at least `reading`: a clock that was advanced before a
    /// restart must not run backwards after it, or stored records would lie in the future.
    pub(crate) fn resume_from(&self, reading: i64) {
        let behind = reading.saturating_sub(now_ms());
        self.offset_ms.fetch_max(behind, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advancing_moves_the_reading_forward_by_at_least_the_amount() {
        let clock = Clock::default();
        let before = clock.now_ms();
        clock.advance(Duration::from_secs(25 * 3600));
        assert!(clock.now_ms() >= before + 25 * 3_600_000);
    }

    #[test]
    fn resuming_never_moves_the_clock_back() {
        let clock = Clock::default();
        let ahead = clock.now_ms() + 3_600_000;
        clock.resume_from(ahead);
        assert!(clock.now_ms() >= ahead);
        clock.resume_from(0);
        assert!(clock.now_ms() >= ahead);
    }
}
