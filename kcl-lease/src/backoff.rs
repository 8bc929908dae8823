//! Exponential back-off with full jitter, the one retry policy of the lease layer.

use std::time::Duration;

use rand::Rng;

/// Back-off settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackoffConfig {
    /// First delay. Default 50 ms.
    pub initial: Duration,
    /// Largest delay. Default 5 s.
    pub max: Duration,
    /// Attempts before giving up (including the first). Default 8.
    pub max_attempts: u32,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(50),
            max: Duration::from_secs(5),
            max_attempts: 8,
        }
    }
}

impl BackoffConfig {
    /// The delay before retry number `attempt` (1-based): uniformly random up to
    /// `initial * 2^(attempt-1)`, capped at `max`, so competing workers spread out.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.max);
        let millis = ceiling.as_millis().max(1) as u64;
        Duration::from_millis(rand::thread_rng().gen_range(millis / 2..=millis))
    }
}

/// Runs `op` until it succeeds, fails with a non-retryable error, or attempts run out.
pub async fn retry<T, F, Fut>(config: &BackoffConfig, mut op: F) -> crate::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::Result<T>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Err(err) if err.is_retryable() && attempt < config.max_attempts => {
                tracing::debug!(error = %err, attempt, "retrying lease table request");
                tokio::time::sleep(config.delay(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}
