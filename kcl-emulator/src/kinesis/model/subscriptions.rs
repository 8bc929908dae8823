//! Live enhanced fan-out subscriptions: AWS allows one per consumer and shard at a time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// Live subscriptions by (consumer ARN, shard id).
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    live: Mutex<HashSet<(String, String)>>,
}

impl Subscriptions {
    /// Claims the consumer's subscription to the shard, or `None` when one is live already.
    /// The claim lasts as long as the returned guard.
    pub(crate) fn claim(
        self: &Arc<Self>,
        consumer_arn: &str,
        shard_id: &str,
    ) -> Option<LiveSubscription> {
        let key = (consumer_arn.to_owned(), shard_id.to_owned());
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone())
            .then(|| LiveSubscription {
                registry: Arc::clone(self),
                key,
            })
    }
}

/// Removes its subscription from the live set when the subscriber task ends.
#[derive(Debug)]
pub(crate) struct LiveSubscription {
    registry: Arc<Subscriptions>,
    key: (String, String),
}

impl Drop for LiveSubscription {
    fn drop(&mut self) {
        self.registry
            .live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}
