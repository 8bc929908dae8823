//! Health and status endpoints of a worker (feature `admin`), for Kubernetes probes, load
//! balancers and operators:
//!
//! | path | answers |
//! |---|---|
//! | `/healthz` | `200 ok` while the process serves requests (liveness probe) |
//! | `/ready` | `200` once the worker has started and no processor call has run longer than the stuck threshold; `503` otherwise, with the reason (readiness probe) |
//! | `/leases` | JSON: the shards this worker holds, how far behind each is, its checkpoint and any call running now |
//! | `/metrics` | the Prometheus metrics of [`crate::prometheus`], when this server installed the recorder |
//!
//! A Kubernetes pod spec would use `livenessProbe: httpGet: {path: /healthz, port: 9100}` and
//! `readinessProbe: httpGet: {path: /ready, port: 9100}`. Note that a stuck shard makes the pod
//! unready, not dead: restarting the process would only move the problem to another worker.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};

use crate::error::{Error, Result};
use crate::status::WorkerStatus;

/// A running admin server; dropping it stops it.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    /// The address it listens on (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the endpoints for `status` (from [`crate::Scheduler::status`]) on `addr`. A shard
/// whose processor call has run longer than `stuck_after` makes the worker unready. `/metrics`
/// is served when no other metrics recorder was installed in this process.
///
/// # Errors
/// [`Error::Config`] when `addr` cannot be bound.
pub async fn serve(
    addr: SocketAddr,
    status: WorkerStatus,
    stuck_after: Duration,
) -> Result<AdminServer> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|err| Error::Config(format!("serving the admin endpoints on {addr}: {err}")))?;
    let addr = listener
        .local_addr()
        .map_err(|err| Error::Config(format!("the admin listener's address: {err}")))?;
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let status = status.clone();
            let metrics = metrics.clone();
            let service = hyper::service::service_fn(move |request: Request<_>| {
                let response =
                    respond(request.uri().path(), &status, stuck_after, metrics.as_ref());
                async move { Ok::<_, Infallible>(response) }
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(AdminServer { addr, task })
}

fn respond(
    path: &str,
    status: &WorkerStatus,
    stuck_after: Duration,
    metrics: Option<&metrics_exporter_prometheus::PrometheusHandle>,
) -> Response<Full<Bytes>> {
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n".to_owned()),
        "/ready" => {
            let stuck = status.stuck_shards(stuck_after);
            let (code, reason) = if !status.started() {
                (StatusCode::SERVICE_UNAVAILABLE, "not started".to_owned())
            } else if !stuck.is_empty() {
                let names: Vec<String> = stuck
                    .iter()
                    .map(|s| {
                        let (call, running) = s.running_call.unwrap_or(("?", Duration::ZERO));
                        format!("{} ({call} running for {running:?})", s.lease_key)
                    })
                    .collect();
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("stuck shards: {}", names.join(", ")),
                )
            } else {
                (StatusCode::OK, "ready".to_owned())
            };
            json(
                code,
                serde_json::json!({
                    "ready": code == StatusCode::OK,
                    "reason": reason,
                    "worker": status.worker_id(),
                    "leader": status.is_leader(),
                    "leases": status.shards().len(),
                }),
            )
        }
        "/leases" => {
            let leases: Vec<serde_json::Value> = status
                .shards()
                .into_iter()
                .map(|s| {
                    serde_json::json!({
                        "leaseKey": s.lease_key,
                        "millisBehindLatest": s.millis_behind_latest,
                        "checkpoint": s.checkpoint,
                        "runningCall": s.running_call.map(|(call, running)| serde_json::json!({
                            "call": call,
                            "seconds": running.as_secs_f64(),
                        })),
                    })
                })
                .collect();
            json(
                StatusCode::OK,
                serde_json::json!({ "worker": status.worker_id(), "leases": leases }),
            )
        }
        "/metrics" => match metrics {
            Some(handle) => text(StatusCode::OK, handle.render()),
            None => text(
                StatusCode::NOT_FOUND,
                "another metrics recorder is installed in this process\n".to_owned(),
            ),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
    }
}

fn text(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn json(code: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = code;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}
