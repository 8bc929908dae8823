//! Prometheus metrics: an HTTP endpoint serving everything the worker records through the
//! `metrics` facade (feature `prometheus`).
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `kcl_records_processed_total` | counter | records handed to processors |
//! | `kcl_bytes_processed_total` | counter | their payload bytes |
//! | `kcl_millis_behind_latest{shard}` | gauge | how far each shard's reader is behind the tip |
//! | `kcl_leases_held` | gauge | leases this worker holds |
//! | `kcl_leases_taken_total` / `kcl_leases_lost_total` | counter | lease moves |
//! | `kcl_processor_failures_total` | counter | processor errors and panics (each restarts its shard) |
//! | `kcl_get_records_seconds` | summary | GetRecords call latency (polling) |
//! | `kcl_fanout_silent_subscriptions_total` | counter | fan-out subscriptions replaced for silence |

use std::net::SocketAddr;

use crate::error::{Error, Result};

/// Installs the process-wide metrics recorder and serves the metrics on `addr` (any path, e.g.
/// `http://<addr>/metrics`) from a background task, for as long as the process runs.
///
/// # Errors
/// [`Error::Config`] when a recorder is already installed or the address cannot be bound.
pub fn serve(addr: SocketAddr) -> Result<()> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|err| Error::Config(format!("serving Prometheus metrics on {addr}: {err}")))
}
