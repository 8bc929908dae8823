//! Live enhanced fan-out subscriptions: AWS allows one per consumer and shard at a time.
//!
//! As in AWS, a second SubscribeToShard for the same consumer and shard within 5 seconds of a
//! successful one is refused (ResourceInUseException); one made later takes the subscription
//! over, and the previous connection ends with a ResourceInUseException. A consumer whose
//! old owner went silent (a crashed or partitioned host whose connection was never closed)
//! must not keep the shard from its new owner until that connection dies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// How long a subscription is protected from being taken over, in milliseconds.
const TAKEOVER_AFTER_MS: i64 = 5_000;

/// Live subscriptions by (consumer ARN, shard id).
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    live: Mutex<HashMap<(String, String), Live>>,
    next_id: std::sync::atomic::AtomicU64,
}

#[derive(Debug)]
struct Live {
    id: u64,
    started_ms: i64,
    taken_over: CancellationToken,
}

impl Subscriptions {
    /// Claims the consumer's subscription to the shard at store time `now_ms`: `None` when
    /// one started less than 5 seconds ago; otherwise a live one is taken over (its
    /// [`LiveSubscription::taken_over`] fires). The claim lasts as long as the returned guard.
    pub(crate) fn claim(
        self: &Arc<Self>,
        consumer_arn: &str,
        shard_id: &str,
        now_ms: i64,
    ) -> Option<LiveSubscription> {
        let key = (consumer_arn.to_owned(), shard_id.to_owned());
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(current) = live.get(&key) {
            if now_ms - current.started_ms < TAKEOVER_AFTER_MS {
                return None;
            }
            current.taken_over.cancel();
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let taken_over = CancellationToken::new();
        live.insert(
            key.clone(),
            Live {
                id,
                started_ms: now_ms,
                taken_over: taken_over.clone(),
            },
        );
        Some(LiveSubscription {
            registry: Arc::clone(self),
            key,
            id,
            taken_over,
        })
    }
}

/// Removes its subscription from the live set when the subscriber task ends (unless a later
/// subscription has taken its place).
#[derive(Debug)]
pub(crate) struct LiveSubscription {
    registry: Arc<Subscriptions>,
    key: (String, String),
    id: u64,
    taken_over: CancellationToken,
}

impl LiveSubscription {
    /// Fires when a later SubscribeToShard took this subscription over.
    pub(crate) fn taken_over(&self) -> CancellationToken {
        self.taken_over.clone()
    }
}

impl Drop for LiveSubscription {
    fn drop(&mut self) {
        let mut live = self.registry.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.get(&self.key).is_some_and(|l| l.id == self.id) {
            live.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_is_taken_over_only_after_five_seconds() {
        let registry = Arc::new(Subscriptions::default());
        let first = registry.claim("consumer", "shard", 1_000).expect("free");
        assert!(registry.claim("consumer", "shard", 5_999).is_none());
        assert!(registry.claim("consumer", "other-shard", 1_000).is_some());
        let second = registry
            .claim("consumer", "shard", 6_000)
            .expect("taken over");
        assert!(first.taken_over().is_cancelled());
        assert!(!second.taken_over().is_cancelled());
        // The old subscriber ending does not free the slot its successor holds.
        drop(first);
        assert!(registry.claim("consumer", "shard", 7_000).is_none());
        drop(second);
        assert!(registry.claim("consumer", "shard", 7_000).is_some());
    }
}
