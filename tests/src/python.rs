//! A Python virtual environment with the independent clients the compatibility tests use
//! (boto3, the AWS CLI, pytest, moto's server, amazon_kclpy), created once under `target/` and
//! reused.
//!
//! amazon_kclpy's build downloads the Java KCL's jars from Maven, which this daemon exists to
//! make unnecessary (and which cannot be reached here). Its Python modules need none of that,
//! so the environment takes the package's source distribution from PyPI and installs just
//! the `amazon_kclpy` modules into site-packages.
//!
//! Tests call [`python_env`]; the first call in any process creates the environment under a
//! directory lock, so parallel test binaries do not race to install.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Packages the compatibility tests need.
const REQUIREMENTS: &[&str] = &[
    // Pinned: the compatibility tests hold the emulator to this botocore's Kinesis service
    // model, every operation of it, so a newer model is taken on deliberately.
    "boto3==1.44.8",
    "botocore==1.44.8",
    "awscli>=1.32",
    "pytest>=7",
    "moto[server]>=5",
];

/// The amazon_kclpy release whose modules the MultiLangDaemon tests drive.
const KCLPY_VERSION: &str = "3.2.0";

/// Extracts the `amazon_kclpy` package from the downloaded sdist into site-packages, and its
/// `samples/` (the sample application and properties file) into the directory `argv[2]`.
const INSTALL_KCLPY: &str = r#"
import glob, os, site, sys, tarfile
sdist = glob.glob(os.path.join(sys.argv[1], "amazon_kclpy-*.tar.gz"))[0]
target = site.getsitepackages()[0]
samples = sys.argv[2]
with tarfile.open(sdist) as archive:
    for member in archive.getmembers():
        parts = member.name.split("/", 1)
        if len(parts) == 2 and parts[1].startswith("amazon_kclpy/") and member.isfile():
            member.name = parts[1]
            archive.extract(member, target)
        elif len(parts) == 2 and parts[1].startswith("samples/") and member.isfile():
            member.name = parts[1].split("/", 1)[1]
            archive.extract(member, samples)
import importlib
sys.path.insert(0, target)
importlib.import_module("amazon_kclpy.kcl")
"#;

/// A ready virtual environment.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    root: PathBuf,
}

impl PythonEnv {
    /// The environment's `python` executable.
    pub fn python(&self) -> PathBuf {
        self.root.join("bin").join("python")
    }

    /// An executable installed into the environment (`aws`, `moto_server`, `pytest`).
    pub fn bin(&self, name: &str) -> PathBuf {
        self.root.join("bin").join(name)
    }

    /// The directory holding amazon_kclpy's `samples/`, as shipped in its source distribution
    /// (`sample_kclpy_app.py`, `sample.properties`).
    pub fn kclpy_samples(&self) -> PathBuf {
        self.root.join("kclpy-samples")
    }
}

/// Returns the environment, creating it on first use.
///
/// # Panics
/// When Python or the package installation is unavailable: these tests must fail loudly, not
/// skip, when their independent client is missing.
pub fn python_env() -> PythonEnv {
    static ENV: OnceLock<PythonEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let root = crate::workspace_root().join("target").join("py-venv");
        let lock = crate::workspace_root().join("target").join("py-venv.lock");
        let _guard = DirLock::acquire(&lock);
        // The marker records what was installed: an environment made for older requirements
        // is made again rather than trusted.
        let ready = root.join(".ready");
        let wanted = format!(
            "{}\namazon_kclpy=={KCLPY_VERSION} with samples",
            REQUIREMENTS.join("\n")
        );
        if std::fs::read_to_string(&ready).ok().as_deref() != Some(wanted.as_str()) {
            create(&root);
            std::fs::write(&ready, &wanted).expect("marking the venv ready");
        }
        PythonEnv { root }
    })
    .clone()
}

fn create(root: &Path) {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_owned());
    run(
        Command::new(&python)
            .args(["-m", "venv", "--clear"])
            .arg(root),
        "creating the venv",
    );
    run(
        Command::new(root.join("bin").join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(REQUIREMENTS),
        "installing boto3, awscli, pytest and moto",
    );
    let sdist_dir = root.join("sdist");
    run(
        Command::new(root.join("bin").join("pip"))
            .args([
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
            ])
            .arg(&sdist_dir)
            .arg(format!("amazon_kclpy=={KCLPY_VERSION}")),
        "downloading the amazon_kclpy source distribution",
    );
    run(
        Command::new(root.join("bin").join("python"))
            .args(["-c", INSTALL_KCLPY])
            .arg(&sdist_dir)
            .arg(root.join("kclpy-samples")),
        "installing the amazon_kclpy modules",
    );
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|err| {
        panic!("{what}: cannot run {command:?}: {err} (is python3 installed?)")
    });
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A lock held by creating a directory (atomic on every filesystem); removed on drop.
struct DirLock {
    path: PathBuf,
}

impl DirLock {
    fn acquire(path: &Path) -> DirLock {
        let deadline = Instant::now() + Duration::from_secs(600);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => {
                    return DirLock {
                        path: path.to_owned(),
                    }
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Err(err) => panic!(
                    "waiting for {}: {err}; remove it if no test is running",
                    path.display()
                ),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// A `moto_server` process on a free 127.0.0.1 port, killed on drop: an independent DynamoDB
/// implementation for the lease store's contract tests.
#[derive(Debug)]
pub struct MotoServer {
    child: std::process::Child,
    endpoint: String,
}

impl MotoServer {
    /// Starts moto_server from the test environment and waits until it accepts connections.
    ///
    /// # Panics
    /// When it cannot be started or does not listen within 60 s.
    pub fn start() -> MotoServer {
        let env = python_env();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(env.bin("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting moto_server");
        let server = MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on port {port} within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
