//! What a worker reports about its load: CPU utilisation (its metrics item) and the
//! throughput of each lease (`throughputKBps`).
//!
//! CPU is read where Java's KCL reads it on a container or a host: the cgroup v2 `cpu.stat`
//! usage against the `cpu.max` quota, else cgroup v1 `cpuacct.usage` against the CFS quota,
//! else the whole host from `/proc/stat`. Utilisation is in percent of what the worker may
//! use (its quota, else all CPUs), so workers of different sizes compare.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::entities::METRIC_CPU;

/// Where CPU usage is read.
#[derive(Debug, Clone)]
enum CpuSource {
    /// cgroup v2: `cpu.stat` (`usage_usec`) and `cpu.max` (`quota period` or `max period`).
    CgroupV2 { dir: PathBuf },
    /// cgroup v1: `cpuacct/cpuacct.usage` (ns) and `cpu/cpu.cfs_quota_us`, `cpu.cfs_period_us`.
    CgroupV1 { dir: PathBuf },
    /// The host: the `cpu` line of `/proc/stat`.
    ProcStat { path: PathBuf },
}

/// A cumulative reading: busy and total time in seconds.
#[derive(Debug, Clone, Copy)]
struct Reading {
    busy: f64,
    /// For cgroups: the wall time of the reading times the CPUs available; for `/proc/stat`:
    /// busy + idle time of all CPUs.
    capacity: f64,
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn host_cpus() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

/// `usage_usec` of a cgroup v2 `cpu.stat`, in seconds.
fn parse_cgroup_v2_usage(cpu_stat: &str) -> Option<f64> {
    cpu_stat.lines().find_map(|line| {
        let value = line.strip_prefix("usage_usec ")?;
        value.trim().parse::<f64>().ok().map(|usec| usec / 1e6)
    })
}

/// CPUs allowed by a cgroup v2 `cpu.max` (`None`: no quota).
fn parse_cgroup_v2_quota(cpu_max: &str) -> Option<f64> {
    let mut parts = cpu_max.split_whitespace();
    let quota = parts.next()?.parse::<f64>().ok()?;
    let period = parts.next()?.parse::<f64>().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// CPUs allowed by a cgroup v1 CFS quota (`-1`: none).
fn parse_cgroup_v1_quota(quota_us: &str, period_us: &str) -> Option<f64> {
    let quota = quota_us.trim().parse::<f64>().ok()?;
    let period = period_us.trim().parse::<f64>().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// Busy and total jiffies of the `cpu` line of `/proc/stat`.
fn parse_proc_stat(stat: &str) -> Option<(f64, f64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse::<f64>())
        .collect::<std::result::Result<_, _>>()
        .ok()?;
    if fields.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user/nice]
    let total: f64 = fields.iter().take(8).sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0.0);
    Some((total - idle, total))
}

impl CpuSource {
    /// The source found under `root` (the file system root in production).
    fn detect(root: &Path) -> CpuSource {
        let v2 = root.join("sys/fs/cgroup");
        if v2.join("cpu.stat").is_file()
            && read(&v2.join("cpu.stat")).is_some_and(|s| parse_cgroup_v2_usage(&s).is_some())
        {
            return CpuSource::CgroupV2 { dir: v2 };
        }
        if v2.join("cpuacct/cpuacct.usage").is_file() {
            return CpuSource::CgroupV1 { dir: v2 };
        }
        CpuSource::ProcStat {
            path: root.join("proc/stat"),
        }
    }

    fn read(&self, elapsed_since_start: f64) -> Option<Reading> {
        match self {
            CpuSource::CgroupV2 { dir } => {
                let busy = parse_cgroup_v2_usage(&read(&dir.join("cpu.stat"))?)?;
                let cpus = read(&dir.join("cpu.max"))
                    .and_then(|s| parse_cgroup_v2_quota(&s))
                    .unwrap_or_else(host_cpus);
                Some(Reading {
                    busy,
                    capacity: elapsed_since_start * cpus,
                })
            }
            CpuSource::CgroupV1 { dir } => {
                let usage_ns = read(&dir.join("cpuacct/cpuacct.usage"))?
                    .trim()
                    .parse::<f64>()
                    .ok()?;
                let cpus = match (
                    read(&dir.join("cpu/cpu.cfs_quota_us")),
                    read(&dir.join("cpu/cpu.cfs_period_us")),
                ) {
                    (Some(quota), Some(period)) => parse_cgroup_v1_quota(&quota, &period),
                    _ => None,
                }
                .unwrap_or_else(host_cpus);
                Some(Reading {
                    busy: usage_ns / 1e9,
                    capacity: elapsed_since_start * cpus,
                })
            }
            CpuSource::ProcStat { path } => {
                let (busy, total) = parse_proc_stat(&read(path)?)?;
                Some(Reading {
                    busy,
                    capacity: total,
                })
            }
        }
    }
}

/// Samples CPU utilisation and keeps the averages a worker reports (`sts`): one average per
/// report window that had samples, the last `persisted` of them; `-1` for a window whose
/// reads failed.
#[derive(Debug)]
pub struct WorkerMetricsSampler {
    source: Option<CpuSource>,
    started: Instant,
    previous: Option<Reading>,
    /// Utilisation samples of the current window; `None` marks a failed read.
    window: Vec<Option<f64>>,
    persisted: usize,
    averages: Vec<f64>,
}

impl WorkerMetricsSampler {
    /// A sampler reading this host's cgroup or `/proc`, keeping `persisted` averages; with
    /// `disabled`, it reports nothing.
    pub fn new(persisted: usize, disabled: bool) -> WorkerMetricsSampler {
        WorkerMetricsSampler::with_root(Path::new("/"), persisted, disabled)
    }

    fn with_root(root: &Path, persisted: usize, disabled: bool) -> WorkerMetricsSampler {
        WorkerMetricsSampler {
            source: (!disabled).then(|| CpuSource::detect(root)),
            started: Instant::now(),
            previous: None,
            window: Vec::new(),
            persisted: persisted.max(1),
            averages: Vec::new(),
        }
    }

    /// Takes one CPU sample (call every `metrics_capture_interval`).
    pub fn sample(&mut self) {
        let Some(source) = &self.source else {
            return;
        };
        let elapsed = self.started.elapsed().as_secs_f64();
        let Some(reading) = source.read(elapsed) else {
            self.previous = None;
            self.window.push(None);
            return;
        };
        if let Some(previous) = self.previous.replace(reading) {
            let capacity = reading.capacity - previous.capacity;
            if capacity > 0.0 {
                let busy = (reading.busy - previous.busy).max(0.0);
                self.window
                    .push(Some((busy / capacity * 100.0).clamp(0.0, 100.0)));
            }
        }
    }

    /// Closes the report window: its average joins the persisted ones. Returns the worker's
    /// `sts` and `opr` maps (both empty when metrics are disabled).
    pub fn report(&mut self) -> (BTreeMap<String, Vec<f64>>, BTreeMap<String, Vec<f64>>) {
        if self.source.is_none() {
            return (BTreeMap::new(), BTreeMap::new());
        }
        if !self.window.is_empty() {
            let values: Option<Vec<f64>> = self.window.drain(..).collect();
            let average = match values {
                Some(values) => values.iter().sum::<f64>() / values.len() as f64,
                None => -1.0,
            };
            self.averages.push(average);
            let excess = self.averages.len().saturating_sub(self.persisted);
            self.averages.drain(..excess);
        }
        if self.averages.is_empty() {
            return (BTreeMap::new(), BTreeMap::new());
        }
        (
            BTreeMap::from([(METRIC_CPU.to_owned(), self.averages.clone())]),
            BTreeMap::from([(METRIC_CPU.to_owned(), vec![100.0])]),
        )
    }
}

/// Per-lease throughput: bytes delivered to the processor, turned into KB/s at each renewal
/// (or checkpoint) and smoothed with an exponential moving average of weight 0.5, as Java's
/// `throughputKBps`.
#[derive(Debug, Default)]
pub struct ThroughputTracker {
    leases: HashMap<String, LeaseThroughput>,
}

#[derive(Debug)]
struct LeaseThroughput {
    bytes: u64,
    since: Instant,
    average: Option<f64>,
}

/// Weight of the newest value in the throughput average (Java's).
const THROUGHPUT_EMA_ALPHA: f64 = 0.5;

impl ThroughputTracker {
    /// Counts `bytes` delivered for `lease_key`.
    pub fn record(&mut self, lease_key: &str, bytes: u64) {
        self.leases
            .entry(lease_key.to_owned())
            .or_insert_with(|| LeaseThroughput {
                bytes: 0,
                since: Instant::now(),
                average: None,
            })
            .bytes += bytes;
    }

    /// The lease's smoothed KB/s, folding in what was delivered since the last call (`None`
    /// for a lease nothing was ever recorded for). Calls closer together than `min_window`
    /// return the current average unchanged, so a burst of checkpoints does not skew it.
    pub fn kbps(&mut self, lease_key: &str, min_window: Duration) -> Option<f64> {
        let entry = self.leases.get_mut(lease_key)?;
        let elapsed = entry.since.elapsed();
        if elapsed < min_window && entry.average.is_some() {
            return entry.average;
        }
        let seconds = elapsed
            .as_secs_f64()
            .max(min_window.as_secs_f64())
            .max(1e-3);
        let current = entry.bytes as f64 / 1024.0 / seconds;
        let average = match entry.average {
            Some(previous) => {
                THROUGHPUT_EMA_ALPHA * current + (1.0 - THROUGHPUT_EMA_ALPHA) * previous
            }
            None => current,
        };
        entry.average = Some(average);
        entry.bytes = 0;
        entry.since = Instant::now();
        Some(average)
    }

    /// Forgets a lease this worker no longer holds.
    pub fn forget(&mut self, lease_key: &str) {
        self.leases.remove(lease_key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_files_parse() {
        assert_eq!(
            parse_cgroup_v2_usage("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n"),
            Some(2.5)
        );
        assert_eq!(parse_cgroup_v2_quota("200000 100000\n"), Some(2.0));
        assert_eq!(parse_cgroup_v2_quota("max 100000\n"), None);
        assert_eq!(parse_cgroup_v1_quota("50000\n", "100000\n"), Some(0.5));
        assert_eq!(parse_cgroup_v1_quota("-1\n", "100000\n"), None);
        assert_eq!(
            parse_proc_stat("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n"),
            Some((200.0, 1000.0))
        );
        assert_eq!(parse_proc_stat("intr 1 2 3\n"), None);
    }

    fn write(dir: &Path, file: &str, text: &str) {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn temp_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kcl-metrics-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn proc_stat_utilisation_is_averaged_per_window_and_the_last_values_kept() {
        let root = temp_root("proc");
        write(&root, "proc/stat", "cpu  0 0 0 0 0 0 0 0\n");
        let mut sampler = WorkerMetricsSampler::with_root(&root, 2, false);
        sampler.sample();
        // 25 % busy, then 75 % busy: one window averages to 50 %.
        write(&root, "proc/stat", "cpu  25 0 0 75 0 0 0 0\n");
        sampler.sample();
        write(&root, "proc/stat", "cpu  100 0 0 100 0 0 0 0\n");
        sampler.sample();
        let (stats, range) = sampler.report();
        assert_eq!(stats[METRIC_CPU], vec![50.0]);
        assert_eq!(range[METRIC_CPU], vec![100.0]);
        // A window without samples adds nothing.
        assert_eq!(sampler.report().0[METRIC_CPU], vec![50.0]);
        // A failed read makes the window's value -1; only the last two are kept.
        std::fs::remove_file(root.join("proc/stat")).unwrap();
        sampler.sample();
        assert_eq!(sampler.report().0[METRIC_CPU], vec![50.0, -1.0]);
        write(&root, "proc/stat", "cpu  100 0 0 100 0 0 0 0\n");
        sampler.sample();
        write(&root, "proc/stat", "cpu  100 0 0 200 0 0 0 0\n");
        sampler.sample();
        assert_eq!(sampler.report().0[METRIC_CPU], vec![-1.0, 0.0]);
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn cgroups_are_preferred_to_the_host_figures() {
        let root = temp_root("cgroup");
        write(&root, "proc/stat", "cpu  1 0 0 1 0 0 0 0\n");
        write(&root, "sys/fs/cgroup/cpu.stat", "usage_usec 10\n");
        write(&root, "sys/fs/cgroup/cpu.max", "100000 100000\n");
        assert!(matches!(
            CpuSource::detect(&root),
            CpuSource::CgroupV2 { .. }
        ));
        let reading = CpuSource::detect(&root).read(4.0).unwrap();
        assert_eq!(reading.capacity, 4.0);
        std::fs::remove_file(root.join("sys/fs/cgroup/cpu.stat")).unwrap();
        write(&root, "sys/fs/cgroup/cpuacct/cpuacct.usage", "3000000000\n");
        write(&root, "sys/fs/cgroup/cpu/cpu.cfs_quota_us", "200000\n");
        write(&root, "sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
        let source = CpuSource::detect(&root);
        assert!(matches!(source, CpuSource::CgroupV1 { .. }));
        let reading = source.read(1.0).unwrap();
        assert_eq!((reading.busy, reading.capacity), (3.0, 2.0));
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn disabled_metrics_report_empty_maps() {
        let mut sampler = WorkerMetricsSampler::new(10, true);
        sampler.sample();
        let (stats, range) = sampler.report();
        assert!(stats.is_empty() && range.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn throughput_is_a_moving_average_of_kilobytes_per_second() {
        let mut tracker = ThroughputTracker::default();
        let window = Duration::from_secs(2);
        assert_eq!(tracker.kbps("a", window), None);
        tracker.record("a", 4096);
        tokio::time::sleep(window).await;
        assert_eq!(tracker.kbps("a", window), Some(2.0));
        tracker.record("a", 12_288);
        tokio::time::sleep(window).await;
        assert_eq!(tracker.kbps("a", window), Some(4.0));
        tokio::time::sleep(window).await;
        assert_eq!(tracker.kbps("a", window), Some(2.0));
        tracker.forget("a");
        assert_eq!(tracker.kbps("a", window), None);
    }
}
