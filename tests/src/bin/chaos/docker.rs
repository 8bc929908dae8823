//! The Docker CLI as the runner uses it: the image built from this binary, and a guard that
//! removes every container and network of a run when dropped (also on error or panic).
//!
//! Everything the runner creates carries the label `kcl-chaos.pid=<runner pid>`; a later run
//! removes what a runner that is no longer alive left behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// The label on every container and network a runner creates; its value is the runner's pid.
pub const LABEL: &str = "kcl-chaos.pid";

/// Runs `docker <args>` and returns its standard output, or an error with its standard error.
pub fn docker(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running docker")?;
    if !output.status.success() {
        bail!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Removes containers and networks labelled by runners whose process is gone.
pub fn sweep_leftovers() {
    let alive = |pid: &str| Path::new("/proc").join(pid).exists();
    let labelled = |kind: &str| -> Vec<(String, String)> {
        let format = format!("{{{{.ID}}}} {{{{.Label \"{LABEL}\"}}}}");
        let listing = match kind {
            "container" => docker(&[
                "ps",
                "-a",
                "--filter",
                &format!("label={LABEL}"),
                "--format",
                &format,
            ]),
            _ => docker(&[
                "network",
                "ls",
                "--filter",
                &format!("label={LABEL}"),
                "--format",
                &format,
            ]),
        };
        listing
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_once(' '))
            .map(|(id, pid)| (id.to_owned(), pid.to_owned()))
            .collect()
    };
    for (id, pid) in labelled("container") {
        if !alive(&pid) {
            let _ = docker(&["rm", "--force", "--volumes", &id]);
        }
    }
    for (id, pid) in labelled("network") {
        if !alive(&pid) {
            let _ = docker(&["network", "rm", &id]);
        }
    }
}

/// The containers and the network of one run; removed on drop.
#[derive(Debug)]
pub struct RunResources {
    /// Prefix of every container name and the network's name.
    pub prefix: String,
    containers: BTreeSet<String>,
    network: Option<String>,
    /// `uid:gid` the containers run as.
    user: String,
}

impl RunResources {
    /// Creates the run's network, `<prefix>-net`. The containers run as the owner of `dir`
    /// (where their mounted directories are), so that the files they write are the runner's.
    pub fn create(prefix: &str, dir: &Path) -> anyhow::Result<RunResources> {
        use std::os::unix::fs::MetadataExt;
        let owner = std::fs::metadata(dir)?;
        let mut resources = RunResources {
            prefix: prefix.to_owned(),
            containers: BTreeSet::new(),
            network: None,
            user: format!("{}:{}", owner.uid(), owner.gid()),
        };
        let network = format!("{prefix}-net");
        docker(&[
            "network",
            "create",
            "--label",
            &format!("{LABEL}={}", std::process::id()),
            &network,
        ])?;
        resources.network = Some(network);
        Ok(resources)
    }

    /// The network's name.
    pub fn network(&self) -> &str {
        self.network.as_deref().expect("created with a network")
    }

    /// The container name for `role`.
    pub fn container(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// `docker run -d` of `image` as container `role` on the run's network, with `extra` docker
    /// options before the image and `command` after it.
    pub fn run(
        &mut self,
        role: &str,
        image: &str,
        extra: &[&str],
        command: &[&str],
    ) -> anyhow::Result<String> {
        let name = self.container(role);
        let label = format!("{LABEL}={}", std::process::id());
        let mut args = vec![
            "run",
            "--detach",
            "--name",
            &name,
            "--label",
            &label,
            "--network",
            self.network.as_deref().expect("created with a network"),
            "--network-alias",
            role,
            "--user",
            &self.user,
            "--env",
            "NO_COLOR=1",
        ];
        args.extend_from_slice(extra);
        args.push(image);
        args.extend_from_slice(command);
        self.containers.insert(name.clone());
        docker(&args)?;
        Ok(name)
    }

    /// An error naming the containers that are not running (one that exited on its own is a
    /// finding, not something to inject faults into).
    pub fn check_running(&self) -> anyhow::Result<()> {
        let mut stopped = Vec::new();
        for name in &self.containers {
            let state = docker(&["inspect", "--format", "{{.State.Status}}", name])?;
            if state != "running" {
                stopped.push(format!("{name} ({state})"));
            }
        }
        if !stopped.is_empty() {
            bail!("not running: {}", stopped.join(", "));
        }
        Ok(())
    }

    /// Copies each container's output to `<dir>/<container>.out`, for looking into a failure.
    pub fn save_outputs(&self, dir: &Path) {
        for name in &self.containers {
            let Ok(output) = Command::new("docker")
                .args(["logs", "--timestamps", name])
                .stdin(Stdio::null())
                .output()
            else {
                continue;
            };
            let mut text = output.stdout;
            text.extend_from_slice(&output.stderr);
            let _ = std::fs::write(dir.join(format!("{name}.out")), text);
        }
    }
}

impl Drop for RunResources {
    fn drop(&mut self) {
        for name in &self.containers {
            if let Err(err) = docker(&["rm", "--force", "--volumes", name]) {
                if !err.to_string().contains("No such container") {
                    eprintln!("could not remove container {name}: {err:#}");
                }
            }
        }
        if let Some(network) = &self.network {
            if let Err(err) = docker(&["network", "rm", network]) {
                eprintln!("could not remove network {network}: {err:#}");
            }
        }
    }
}

/// Builds (unless it exists) the image `kcl-chaos:<digest of this binary>`: `FROM scratch` with
/// this executable at `/chaos`, the shared libraries it links at their paths, and the host's CA
/// bundle. Older
/// `kcl-chaos` images are removed. Returns the image reference.
pub fn ensure_image(work_dir: &Path) -> anyhow::Result<String> {
    let executable = std::env::current_exe().context("finding this executable")?;
    let bytes = std::fs::read(&executable).context("reading this executable")?;
    let digest = format!("{:x}", md5::Md5::digest(&bytes));
    let image = format!("kcl-chaos:{}", &digest[..16]);
    if docker(&["image", "inspect", "--format", "{{.Id}}", &image]).is_ok() {
        return Ok(image);
    }
    for old in docker(&[
        "image",
        "ls",
        "kcl-chaos",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ])?
    .lines()
    {
        let _ = docker(&["image", "rm", old]);
    }
    let context = work_dir.join("image-context");
    let _ = std::fs::remove_dir_all(&context);
    let root = context.join("root");
    std::fs::create_dir_all(&root)?;
    std::fs::copy(&executable, root.join("chaos"))?;
    for library in linked_libraries(&executable)? {
        let target = root.join(library.strip_prefix("/").unwrap_or(&library));
        std::fs::create_dir_all(target.parent().expect("a library path has a directory"))?;
        // Copy through symlinks: the image gets the files under the names the loader asks for.
        std::fs::copy(&library, &target)
            .with_context(|| format!("copying {}", library.display()))?;
    }
    // The SDK's HTTPS client wants root certificates even when every endpoint is plain HTTP.
    let certificates = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if certificates.exists() {
        let target = root.join("etc/ssl/certs");
        std::fs::create_dir_all(&target)?;
        std::fs::copy(certificates, target.join("ca-certificates.crt"))?;
    }
    std::fs::write(
        context.join("Dockerfile"),
        "FROM scratch\nCOPY root/ /\nENTRYPOINT [\"/chaos\"]\n",
    )?;
    eprintln!("building image {image}");
    let status = Command::new("docker")
        .args(["build", "--quiet", "--tag", &image])
        .arg(&context)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .context("running docker build")?;
    let _ = std::fs::remove_dir_all(&context);
    if !status.success() {
        bail!("docker build of {image} failed ({status})");
    }
    Ok(image)
}

/// The shared libraries and the loader `ldd` lists for `executable` (none for a static one).
fn linked_libraries(executable: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(executable)
        .stdin(Stdio::null())
        .output()
        .context("running ldd")?;
    let listing = String::from_utf8_lossy(&output.stdout);
    let mut libraries = Vec::new();
    for line in listing.lines() {
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or `/lib64/ld-linux-x86-64.so.2 (0x...)`
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|path| path.starts_with('/')) {
            libraries.push(PathBuf::from(path));
        }
    }
    Ok(libraries)
}

use md5::Digest as _;
