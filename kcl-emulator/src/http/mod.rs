//! The HTTP listener: HTTP/1.1 and h2c on one port, dispatching on `X-Amz-Target`.
//!
//! Kinesis speaks AWS JSON 1.1 or CBOR 1.1, DynamoDB AWS JSON 1.0; both put the operation in
//! `X-Amz-Target` (`Kinesis_20131202.PutRecords`, `DynamoDB_20120810.GetItem`) and POST to `/`.
//! Signatures are not checked: any SigV4 credentials work, as with other local emulators.
//! `GET /health` answers readiness probes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::dynamodb::DynamoDb;
use crate::kinesis::api::{dispatch, Reply};
use crate::kinesis::KinesisStore;
use crate::wire::codec::{self, Format};
use crate::wire::{ApiError, ErrorKind};
use crate::Config;

/// How long a graceful shutdown waits for open connections to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How often retention and deleted-stream cleanup run.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Everything a request can reach.
#[derive(Debug)]
pub(crate) struct Services {
    pub(crate) kinesis: KinesisStore,
    pub(crate) dynamodb: DynamoDb,
    request_ids: AtomicU64,
}

impl Services {
    /// Opens both stores under `config`.
    pub(crate) fn open(config: &Config) -> std::io::Result<Services> {
        Ok(Services {
            kinesis: KinesisStore::open(config)?,
            dynamodb: DynamoDb::open(config)?,
            request_ids: AtomicU64::new(1),
        })
    }

    fn request_id(&self) -> String {
        let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:08x}-{:04x}-4000-8000-{:012x}",
            std::process::id(),
            n >> 48,
            n & 0xffff_ffff_ffff
        )
    }
}

/// Accepts connections on `listener` until `shutdown` is cancelled, then lets open connections
/// finish (bounded by a grace period).
pub(crate) async fn serve(
    listener: TcpListener,
    services: Arc<Services>,
    shutdown: CancellationToken,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let config = &services.kinesis.config;
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let idle_timeout = config.idle_timeout;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let sweeper = tokio::spawn(sweep(Arc::clone(&services), shutdown.clone()));
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            permit = Arc::clone(&slots).acquire_owned() => permit.expect("never closed"),
        };
        let (socket, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = socket.set_nodelay(true);
        let services = Arc::clone(&services);
        let service = service_fn(move |request| {
            let services = Arc::clone(&services);
            async move {
                // A bug in one action must cost one request, not the connection or the server.
                let handled = std::panic::AssertUnwindSafe(handle(&services, request, peer));
                let response = match futures::FutureExt::catch_unwind(handled).await {
                    Ok(response) => response,
                    Err(_) => {
                        let error = ApiError::internal("the emulator hit an internal error");
                        error_response(&error, Format::Json, false, "panic")
                    }
                };
                Ok::<_, Infallible>(response)
            }
        });
        let activity = Arc::new(Activity::new());
        let socket = Watched {
            socket,
            activity: Arc::clone(&activity),
        };
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(socket), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // Dropping the connection closes the socket, which frees the slot for a client
            // that will use it.
            tokio::select! {
                result = connection => if let Err(err) = result {
                    tracing::debug!(error = %err, %peer, "connection ended with an error");
                },
                () = activity.idle_for(idle_timeout) => {
                    tracing::debug!(%peer, ?idle_timeout, "closed an idle connection");
                }
            }
            drop(permit);
        });
    }
    sweeper.abort();
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
}

/// When a connection last moved bytes either way.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    last_millis: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            last_millis: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let millis = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_millis.store(millis, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_millis.load(Ordering::Relaxed))
    }

    /// Completes once no bytes have moved for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let deadline = self.last() + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A socket that records its traffic in an [`Activity`]. Watching bytes rather than requests
/// also catches clients that stall before hyper sees a request: silent after connecting,
/// or short of the bytes that tell HTTP/1.1 from h2c.
struct Watched<S> {
    socket: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.socket).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.socket).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.socket).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.socket.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.socket).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.socket).poll_shutdown(cx)
    }
}

async fn sweep(services: Arc<Services>, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {
                let services = Arc::clone(&services);
                // File deletes block; keep them off the request threads.
                let _ = tokio::task::spawn_blocking(move || {
                    services.kinesis.purge_deleted();
                    services.kinesis.enforce_retention();
                })
                .await;
            }
        }
    }
}

/// Which service an `X-Amz-Target` addresses.
enum Target<'a> {
    Kinesis(&'a str),
    DynamoDb(&'a str),
}

/// Every response body: whole (most operations) or streamed (SubscribeToShard).
type Body = BoxBody<Bytes, Infallible>;

/// A streamed body that sends each frame as the client reads, so a slow reader holds back
/// the producer instead of buffering without bound.
fn event_stream(frames: mpsc::Receiver<Bytes>) -> Body {
    let frames = futures::stream::unfold(frames, |mut frames| async move {
        frames
            .recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(Frame::data(bytes)), frames))
    });
    StreamBody::new(frames).boxed()
}

fn whole(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

async fn handle(
    services: &Arc<Services>,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Body> {
    let request_id = services.request_id();
    if request.method() == Method::GET {
        return health(request.uri().path(), &request_id);
    }
    let format = Format::from_content_type(
        request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
    );
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let target = match target.as_deref() {
        Some(t) if t.starts_with("Kinesis_20131202.") => Target::Kinesis(&t[17..]),
        Some(t) if t.starts_with("DynamoDB_20120810.") => Target::DynamoDb(&t[18..]),
        other => {
            let error = ApiError::new(
                ErrorKind::UnknownOperation,
                match other {
                    Some(t) => format!("Unknown operation {t}"),
                    None => "Missing X-Amz-Target header naming the operation".to_owned(),
                },
            );
            return error_response(&error, format, false, &request_id);
        }
    };
    let dynamo = matches!(target, Target::DynamoDb(_));
    if request.method() != Method::POST {
        let error = ApiError::new(
            ErrorKind::MissingAction,
            "Only POST requests carry operations",
        );
        return error_response(&error, format, dynamo, &request_id);
    }
    let limit = services.kinesis.config.max_request_bytes;
    let body = match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            let error = if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::new(
                    ErrorKind::RequestEntityTooLarge,
                    format!("Request body is larger than the limit of {limit} bytes"),
                )
            } else {
                ApiError::serialization(format!("Failed to read the request body: {err}"))
            };
            return error_response(&error, format, dynamo, &request_id);
        }
    };
    let result = match target {
        Target::Kinesis(operation) => {
            tracing::trace!(%peer, operation, "Kinesis request");
            dispatch(&services.kinesis, operation, format, &body).await
        }
        Target::DynamoDb(operation) => {
            tracing::trace!(%peer, operation, "DynamoDB request");
            match codec::decode_value(Format::Json, &body) {
                Ok(value) => services
                    .dynamodb
                    .handle(operation, value)
                    .await
                    .map(|out| Reply::Whole(codec::encode_value(Format::Json, &out))),
                Err(err) => Err(err),
            }
        }
    };
    match result {
        Ok(Reply::Whole(body)) => {
            let content_type = if dynamo {
                Format::Json.content_type("1.0")
            } else {
                format.content_type("1.1")
            };
            let mut response = Response::new(whole(body));
            set_header(&mut response, header::CONTENT_TYPE, &content_type);
            set_header(&mut response, "x-amzn-requestid", &request_id);
            response
        }
        Ok(Reply::EventStream(frames)) => {
            let mut response = Response::new(event_stream(frames));
            set_header(
                &mut response,
                header::CONTENT_TYPE,
                "application/vnd.amazon.eventstream",
            );
            set_header(&mut response, "x-amzn-requestid", &request_id);
            response
        }
        Err(error) => {
            if error.kind == ErrorKind::InternalFailure {
                tracing::error!(error = %error, "request failed inside the emulator");
            } else {
                tracing::debug!(error = %error, "request rejected");
            }
            error_response(
                &error,
                if dynamo { Format::Json } else { format },
                dynamo,
                &request_id,
            )
        }
    }
}

fn health(path: &str, request_id: &str) -> Response<Body> {
    let (status, body) = match path {
        "/health" | "/healthz" | "/" => (
            StatusCode::OK,
            r#"{"status":"ok","services":["kinesis","dynamodb"]}"#,
        ),
        _ => (StatusCode::NOT_FOUND, r#"{"status":"not found"}"#),
    };
    let mut response = Response::new(whole(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    set_header(&mut response, header::CONTENT_TYPE, "application/json");
    set_header(&mut response, "x-amzn-requestid", request_id);
    response
}

/// Builds the error body the way each service shapes it: Kinesis sends the bare type name,
/// DynamoDB prefixes it with its namespace (SDKs strip everything up to `#`).
fn error_response(
    error: &ApiError,
    format: Format,
    dynamo: bool,
    request_id: &str,
) -> Response<Body> {
    let type_name = if dynamo {
        format!(
            "com.amazonaws.dynamodb.v20120810#{}",
            error.kind.wire_name()
        )
    } else {
        error.kind.wire_name().to_owned()
    };
    let mut body = serde_json::Map::new();
    body.insert("__type".to_owned(), type_name.into());
    body.insert("message".to_owned(), error.message.clone().into());
    if let Some(extra) = &error.extra {
        body.extend(extra.clone());
    }
    let bytes = codec::encode_value(format, &serde_json::Value::Object(body));
    let mut response = Response::new(whole(bytes));
    *response.status_mut() = error.kind.status();
    let content_type = if dynamo {
        format.content_type("1.0")
    } else {
        format.content_type("1.1")
    };
    set_header(&mut response, header::CONTENT_TYPE, &content_type);
    set_header(&mut response, "x-amzn-requestid", request_id);
    set_header(&mut response, "x-amzn-errortype", error.kind.wire_name());
    response
}

fn set_header<K: header::IntoHeaderName>(response: &mut Response<Body>, name: K, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}
