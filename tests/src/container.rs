//! Helpers for the tests that run the emulator's container image through testcontainers: a
//! Docker engine check that fails loudly, a one-time image build, and named volumes that are
//! removed when dropped.
//!
//! Call [`prepare`] at the start of every container test. It panics with a message naming the
//! missing Docker engine when none is reachable, and builds `kcl-emulator:<version>` with
//! `kcl-emulator/docker/build-image.sh` when the image does not exist yet (once per machine, even
//! with several test processes). An existing image is used as it is: rebuild it with the script
//! after changing the emulator.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::{unique_name, workspace_root};

/// The image the tests run: `kcl-emulator:<crate version>`.
pub fn image_reference() -> String {
    format!(
        "{}:{}",
        kcl_emulator::testcontainers::NAME,
        kcl_emulator::testcontainers::TAG
    )
}

/// Checks that a Docker engine answers, builds the image if it is missing, and lets
/// testcontainers talk to engines older than its Docker API (see [`api_shim`]). Runs once per
/// process; panics with the reason on every call if it failed.
pub fn prepare() {
    static PREPARED: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(message) = PREPARED.get_or_init(|| {
        let api_version = docker_engine_api_version(None)?;
        ensure_image()?;
        api_shim::install(&api_version)
    }) {
        panic!("{message}");
    }
}

/// The API version of the Docker engine at `docker_host` (`DOCKER_HOST` syntax; `None`: the
/// Docker CLI's default), or an error naming the missing engine.
pub fn docker_engine_api_version(docker_host: Option<&str>) -> Result<String, String> {
    let mut command = docker();
    command.args(["version", "--format", "{{.Server.APIVersion}}"]);
    if let Some(host) = docker_host {
        command
            .env("DOCKER_HOST", host)
            .env_remove("DOCKER_CONTEXT");
    }
    let output = command.stdin(Stdio::null()).output().map_err(|err| {
        format!(
            "no Docker engine: the container tests need a running Docker engine and the `docker` \
             CLI, and running `docker` failed: {err}"
        )
    })?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() || version.is_empty() {
        return Err(format!(
            "no Docker engine reachable: the container tests need a running Docker engine \
             (start it, or point DOCKER_HOST at one); `docker version` said: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(version)
}

/// Builds the image with `kcl-emulator/docker/build-image.sh` unless it exists. A file lock
/// keeps concurrent test processes from building it twice.
fn ensure_image() -> Result<(), String> {
    let image = image_reference();
    if image_exists(&image) {
        return Ok(());
    }
    let lock_dir = workspace_root().join("target").join("tmp");
    std::fs::create_dir_all(&lock_dir).map_err(|err| format!("creating {lock_dir:?}: {err}"))?;
    let lock = std::fs::File::create(lock_dir.join("kcl-emulator-image.lock"))
        .map_err(|err| format!("creating the image build lock: {err}"))?;
    lock.lock()
        .map_err(|err| format!("taking the image build lock: {err}"))?;
    if image_exists(&image) {
        return Ok(()); // another test process built it while we waited
    }
    let script = workspace_root()
        .join("kcl-emulator")
        .join("docker")
        .join("build-image.sh");
    eprintln!("building {image} with {}", script.display());
    // The script's progress goes straight to the terminal: the first build takes minutes.
    let status = Command::new(&script)
        .stdin(Stdio::null())
        .status()
        .map_err(|err| format!("running {}: {err}", script.display()))?;
    if !status.success() || !image_exists(&image) {
        return Err(format!(
            "{} failed ({status}); the container tests need the image {image}",
            script.display()
        ));
    }
    Ok(())
}

fn image_exists(image: &str) -> bool {
    docker()
        .args(["image", "inspect", "--format", "{{.Id}}", image])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The Docker CLI, talking to the engine directly even when `DOCKER_HOST` points at the shim.
fn docker() -> Command {
    let mut command = Command::new("docker");
    if let Some(upstream) = api_shim::UPSTREAM.get() {
        command.env("DOCKER_HOST", upstream);
    }
    command
}

/// A named Docker volume, removed (with `docker volume rm -f`) when dropped. Drop it after the
/// containers that use it: declare it before them.
#[derive(Debug)]
pub struct DockerVolume {
    name: String,
}

impl DockerVolume {
    /// Creates a volume with a unique name starting with `prefix` (after [`prepare`]).
    pub fn create(prefix: &str) -> DockerVolume {
        prepare();
        let name = unique_name(prefix);
        let output = docker()
            .args(["volume", "create", &name])
            .stdin(Stdio::null())
            .output()
            .expect("running docker volume create");
        assert!(
            output.status.success(),
            "docker volume create {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        DockerVolume { name }
    }

    /// The volume's name, for `Mount::volume_mount`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for DockerVolume {
    fn drop(&mut self) {
        let removed = docker()
            .args(["volume", "rm", "--force", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        if !removed.is_ok_and(|status| status.success()) {
            eprintln!("could not remove docker volume {}", self.name);
        }
    }
}

/// The health status Docker reports for a container (`starting`, `healthy`, `unhealthy`), from
/// the image's `HEALTHCHECK`.
pub fn health_status(container_id: &str) -> String {
    let output = docker()
        .args([
            "inspect",
            "--format",
            "{{.State.Health.Status}}",
            container_id,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("running docker inspect");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Whether a volume named `name` exists.
pub fn volume_exists(name: &str) -> bool {
    docker()
        .args(["volume", "inspect", name])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// testcontainers speaks the newest Docker API its bollard client knows, without negotiating,
/// and an engine answers a newer version than its own with "client version ... is too new".
/// Against such an engine the tests put this proxy between the two: it listens on a Unix socket
/// in `target/tmp`, rewrites the version in each request path down to the engine's, and
/// `DOCKER_HOST` points testcontainers at it. Connection upgrades (`exec`, `attach`) are not
/// proxied; the tests do not use them.
pub mod api_shim {
    use super::*;

    /// The engine's own `DOCKER_HOST`, once the shim is installed.
    pub(super) static UPSTREAM: OnceLock<String> = OnceLock::new();

    fn parse(version: &str) -> Option<(usize, usize)> {
        let (major, minor) = version.split_once('.')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    }

    /// Starts the proxy and sets `DOCKER_HOST` if the engine's API (`engine_api`, e.g. `1.41`)
    /// is older than testcontainers'. Call before any testcontainers use.
    pub(super) fn install(engine_api: &str) -> Result<(), String> {
        let client = testcontainers::bollard::API_DEFAULT_VERSION;
        let engine = parse(engine_api)
            .ok_or_else(|| format!("unexpected Docker API version {engine_api:?}"))?;
        if engine >= (client.major_version, client.minor_version) {
            return Ok(());
        }
        let docker_host = std::env::var("DOCKER_HOST").ok();
        let upstream = match docker_host.as_deref() {
            None | Some("") => PathBuf::from("/var/run/docker.sock"),
            Some(host) => match host.strip_prefix("unix://") {
                Some(path) => PathBuf::from(path),
                None => {
                    return Err(format!(
                        "the Docker engine at {host} speaks API {engine_api}, older than the \
                         {}.{} testcontainers needs; only a unix:// DOCKER_HOST can be bridged",
                        client.major_version, client.minor_version
                    ))
                }
            },
        };
        let dir = workspace_root().join("target").join("tmp");
        std::fs::create_dir_all(&dir).map_err(|err| format!("creating {dir:?}: {err}"))?;
        remove_stale_sockets(&dir);
        let socket = dir.join(format!("docker-api-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let listener = std::os::unix::net::UnixListener::bind(&socket)
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .map_err(|err| format!("binding {socket:?}: {err}"))?;
        let engine_api: Arc<str> = Arc::from(engine_api);
        let upstream: Arc<Path> = Arc::from(upstream);
        let _ = UPSTREAM.set(format!("unix://{}", upstream.display()));
        std::thread::Builder::new()
            .name("docker-api-shim".to_owned())
            .spawn(move || serve(listener, upstream, engine_api))
            .map_err(|err| format!("starting the Docker API shim: {err}"))?;
        // Set before any testcontainers client exists; every container test calls `prepare`
        // first, and the test harness reads no environment meanwhile.
        std::env::set_var("DOCKER_HOST", format!("unix://{}", socket.display()));
        Ok(())
    }

    /// Removes the sockets of earlier test processes: nothing accepts connections on them.
    fn remove_stale_sockets(dir: &Path) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("docker-api-")
                && name.ends_with(".sock")
                && std::os::unix::net::UnixStream::connect(&path).is_err()
            {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    fn serve(listener: std::os::unix::net::UnixListener, upstream: Arc<Path>, api: Arc<str>) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the Docker API shim");
        runtime.block_on(async move {
            let listener = tokio::net::UnixListener::from_std(listener).expect("shim listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (upstream, api) = (Arc::clone(&upstream), Arc::clone(&api));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        forward(request, Arc::clone(&upstream), Arc::clone(&api))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    }

    type Body = BoxBody<Bytes, hyper::Error>;

    async fn forward(
        mut request: Request<Incoming>,
        upstream: Arc<Path>,
        api: Arc<str>,
    ) -> Result<Response<Body>, Infallible> {
        if let Some(rewritten) = rewrite(request.uri(), &api) {
            *request.uri_mut() = rewritten;
        }
        let result = async {
            let stream = tokio::net::UnixStream::connect(&*upstream).await?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(std::io::Error::other)?;
            tokio::spawn(connection);
            sender
                .send_request(request)
                .await
                .map_err(std::io::Error::other)
        }
        .await;
        Ok(match result {
            Ok(response) => response.map(BodyExt::boxed),
            Err(err) => {
                let mut response = Response::new(
                    Full::new(Bytes::from(format!(
                        "{{\"message\":\"Docker API shim: {err}\"}}"
                    )))
                    .map_err(|never| match never {})
                    .boxed(),
                );
                *response.status_mut() = StatusCode::BAD_GATEWAY;
                response
            }
        })
    }

    /// `/v1.53/containers/json?all=1` → `/v1.41/containers/json?all=1` when the engine has 1.41.
    fn rewrite(uri: &hyper::Uri, api: &str) -> Option<hyper::Uri> {
        let path_and_query = uri.path_and_query()?.as_str();
        let rest = path_and_query.strip_prefix("/v")?;
        let (version, tail) = rest.split_at(rest.find('/')?);
        if parse(version)? <= parse(api)? {
            return None;
        }
        format!("/v{api}{tail}").parse().ok()
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn rewrites_newer_versions_only() {
            let uri = |s: &str| s.parse::<hyper::Uri>().unwrap();
            assert_eq!(
                super::rewrite(&uri("/v1.53/containers/json?all=1"), "1.41"),
                Some(uri("/v1.41/containers/json?all=1"))
            );
            assert_eq!(super::rewrite(&uri("/v1.41/info"), "1.41"), None);
            assert_eq!(super::rewrite(&uri("/v1.24/info"), "1.41"), None);
            assert_eq!(super::rewrite(&uri("/_ping"), "1.41"), None);
        }
    }
}
