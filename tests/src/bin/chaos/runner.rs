//! `chaos run`: one fleet per seed in containers, the seed's fault schedule, a drain, the
//! checks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_kinesis::types::{ScalingType, StreamStatus};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::docker::{docker, ensure_image, sweep_leftovers, RunResources};
use crate::logs::now_ms;
use crate::report::{analyze, Fault, FaultKind};
use crate::worker::{Coordination, Mode};

const STREAM: &str = "chaos";
const APP: &str = "chaos-app";
const EMULATOR_PORT: &str = "4567";

/// Which fault schedule to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Schedule {
    /// One kill, one partition, one pause and one split, in a seeded order (the CI scenario).
    Short,
    /// Every kind of fault at least once, then seeded picks until the duration is used.
    Long,
}

/// `chaos run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Seeds to run: `7`, or an inclusive range `1..20`.
    #[arg(long, default_value = "1")]
    seeds: String,
    /// How long faults are injected per seed (`300s`, `5m`); the drain comes on top.
    #[arg(long, default_value = "300s", value_parser = parse_duration)]
    duration: Duration,
    /// The fault schedule.
    #[arg(long, value_enum, default_value_t = Schedule::Long)]
    schedule: Schedule,
    /// Number of worker containers.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Shards the stream starts with.
    #[arg(long, default_value_t = 4)]
    shards: i32,
    /// Polling or enhanced fan-out.
    #[arg(long, value_enum, default_value_t = Mode::Polling)]
    mode: Mode,
    /// The workers' coordination protocol: KCL 3 leader assignment or KCL 2 lease taking.
    #[arg(long, value_enum, default_value_t = Coordination::Kcl3)]
    coordination: Coordination,
    /// The workers' lease failover time (`10s`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    failover: Duration,
    /// Partition keys the producer writes.
    #[arg(long, default_value_t = 32)]
    keys: usize,
    /// Milliseconds between the producer's rounds (one record per key each).
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Where each seed's logs go (`<out>/seed-<n>/`); kept after the run.
    #[arg(long, default_value = "target/chaos")]
    out: PathBuf,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 300s, 5m or 1500ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        "m" => Ok(Duration::from_secs(number * 60)),
        _ => Err(format!("{text:?}: the unit is ms, s or m")),
    }
}

fn parse_seeds(text: &str) -> anyhow::Result<Vec<u64>> {
    match text.split_once("..") {
        Some((first, last)) => {
            let (first, last): (u64, u64) = (first.parse()?, last.trim_start_matches('=').parse()?);
            if first > last {
                bail!("empty seed range {text}");
            }
            Ok((first..=last).collect())
        }
        None => Ok(vec![text.parse()?]),
    }
}

/// `chaos report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A seed's directory of a kept run (`<out>/seed-<n>`).
    dir: PathBuf,
}

/// Runs the checks again on the logs of a finished seed.
pub fn report(args: ReportArgs) -> anyhow::Result<bool> {
    let logs = args.dir.join("logs");
    let text = std::fs::read_to_string(logs.join("faults.log"))?;
    let faults: Vec<Fault> = text.lines().filter_map(Fault::parse).collect();
    let timing = text
        .lines()
        .filter_map(|line| line.strip_prefix("T "))
        .next_back()
        .context("faults.log has no T line: the run did not finish")?;
    let fields: Vec<&str> = timing.split(' ').collect();
    let (started, produced_until) = (fields[0].parse()?, fields[1].parse()?);
    let failover_ms = fields
        .get(3)
        .context("faults.log has no failover time")?
        .parse()?;
    let report = analyze(
        &logs,
        &faults,
        failover_ms,
        started,
        produced_until,
        fields[2] == "drained",
    )?;
    report.print_table(&faults, started);
    let seed = args
        .dir
        .file_name()
        .and_then(|name| name.to_str()?.strip_prefix("seed-")?.parse().ok())
        .unwrap_or(0);
    // Runs from before the coordination choice was logged ran KCL 2.
    let coordination = fields.get(4).copied().unwrap_or("kcl2");
    println!("{}", report.summary(seed, "-", coordination, 0));
    Ok(report.passed())
}

/// Runs every seed; `Ok(true)` when every check of every seed passed.
pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let seeds = parse_seeds(&args.seeds)?;
    docker(&["version", "--format", "{{.Server.Version}}"])
        .context("the chaos runner needs a Docker engine")?;
    sweep_leftovers();
    std::fs::create_dir_all(&args.out)?;
    let out = std::fs::canonicalize(&args.out)?;
    let image = ensure_image(&out)?;
    let mut summaries = Vec::new();
    let mut all_passed = true;
    for seed in seeds {
        let dir = out.join(format!("seed-{seed}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("logs"))?;
        std::fs::create_dir_all(dir.join("data"))?;
        let prefix = format!("kcl-chaos-{}-{seed}", std::process::id());
        let mut resources = RunResources::create(&prefix, &dir)?;
        let outcome = tokio::select! {
            outcome = run_seed(&args, seed, &image, &dir, &mut resources) => outcome,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        resources.save_outputs(&dir);
        drop(resources);
        match outcome {
            Ok((passed, summary)) => {
                all_passed &= passed;
                summaries.push(summary);
            }
            Err(err) => {
                all_passed = false;
                let summary = format!("chaos seed={seed} error: {err:#}");
                println!("{summary}");
                summaries.push(summary);
            }
        }
    }
    if summaries.len() > 1 {
        println!("\nall seeds:");
        for summary in &summaries {
            println!("{summary}");
        }
    }
    println!("logs in {}", out.display());
    Ok(all_passed)
}

/// The fleet of one seed.
struct Cluster<'a> {
    resources: &'a mut RunResources,
    image: String,
    logs: PathBuf,
    args: &'a RunArgs,
    kinesis: aws_sdk_kinesis::Client,
}

impl Cluster<'_> {
    fn worker_name(&self, index: usize) -> String {
        format!("w{index}")
    }

    fn start_worker(&mut self, index: usize) -> anyhow::Result<()> {
        let id = self.worker_name(index);
        let mount = format!("{}:/logs", self.logs.display());
        let failover = self.args.failover.as_millis().to_string();
        self.resources.run(
            &id,
            &self.image,
            &["--volume", &mount],
            &[
                "worker",
                "--endpoint",
                &format!("http://emulator:{EMULATOR_PORT}"),
                "--stream",
                STREAM,
                "--app",
                APP,
                "--worker-id",
                &id,
                "--log-dir",
                "/logs",
                "--mode",
                self.args.mode.as_str(),
                "--failover-ms",
                &failover,
                "--coordination",
                self.args.coordination.as_str(),
            ],
        )?;
        Ok(())
    }

    /// The emulator's endpoint as published on 127.0.0.1 (it changes when the container
    /// restarts), once it answers.
    async fn connect_emulator(&mut self) -> anyhow::Result<()> {
        let container = self.resources.container("emulator");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(mapping) = docker(&["port", &container, &format!("{EMULATOR_PORT}/tcp")]) {
                if let Some(address) = mapping.lines().find(|line| line.starts_with("127.0.0.1:")) {
                    let client =
                        kcl_emulator::testcontainers::kinesis_client(&format!("http://{address}"));
                    if client.list_streams().send().await.is_ok() {
                        self.kinesis = client;
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                bail!("the emulator did not answer within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn wait_active(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let summary = self
                .kinesis
                .describe_stream_summary()
                .stream_name(STREAM)
                .send()
                .await;
            if let Ok(summary) = summary {
                if summary
                    .stream_description_summary()
                    .is_some_and(|s| s.stream_status() == &StreamStatus::Active)
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("the stream did not become ACTIVE within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Open shards: (id, starting hash key, ending hash key), by starting hash key.
    async fn open_shards(&self) -> anyhow::Result<Vec<(String, u128, u128)>> {
        let mut shards = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let request = match &next {
                Some(token) => self.kinesis.list_shards().next_token(token),
                None => self.kinesis.list_shards().stream_name(STREAM),
            };
            let page = request.send().await?;
            for shard in page.shards() {
                if shard
                    .sequence_number_range()
                    .and_then(|range| range.ending_sequence_number())
                    .is_some()
                {
                    continue;
                }
                let range = shard.hash_key_range().context("a shard has a hash range")?;
                shards.push((
                    shard.shard_id().to_owned(),
                    range.starting_hash_key().parse()?,
                    range.ending_hash_key().parse()?,
                ));
            }
            next = page.next_token().map(str::to_owned);
            if next.is_none() {
                break;
            }
        }
        shards.sort_by_key(|shard| shard.1);
        Ok(shards)
    }

    /// Injects `kind`, waits `hold` where it has a duration, undoes it.
    async fn inject(
        &mut self,
        kind: FaultKind,
        worker: usize,
        hold: Duration,
        rng: &mut StdRng,
    ) -> anyhow::Result<Injected> {
        let container = self.resources.container(&self.worker_name(worker));
        let network = self.resources.network().to_owned();
        match kind {
            FaultKind::Kill => {
                docker(&["kill", "--signal", "KILL", &container])?;
                let in_effect_ms = now_ms();
                tokio::time::sleep(hold).await;
                docker(&["start", &container])?;
                Ok(Injected::held(in_effect_ms, "restarted", hold))
            }
            FaultKind::Partition => {
                docker(&["network", "disconnect", &network, &container])?;
                let in_effect_ms = now_ms();
                tokio::time::sleep(hold).await;
                let alias = self.worker_name(worker);
                docker(&[
                    "network", "connect", "--alias", &alias, &network, &container,
                ])?;
                Ok(Injected::held(in_effect_ms, "reconnected", hold))
            }
            FaultKind::Pause => {
                // The cgroup freezer can fail to freeze a process caught in the kernel
                // ("unable to freeze"); it succeeds on a later try.
                let mut attempts = 0;
                while let Err(err) = docker(&["pause", &container]) {
                    attempts += 1;
                    if attempts == 10 {
                        return Err(err);
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                let in_effect_ms = now_ms();
                tokio::time::sleep(hold).await;
                docker(&["unpause", &container])?;
                Ok(Injected::held(in_effect_ms, "unpaused", hold))
            }
            FaultKind::GracefulRestart => {
                // In effect when the shutdown starts: the worker hands its shards over.
                let in_effect_ms = now_ms();
                docker(&["stop", "--time", "30", &container])?;
                tokio::time::sleep(hold).await;
                docker(&["start", &container])?;
                Ok(Injected::held(in_effect_ms, "started", hold))
            }
            FaultKind::EmulatorKill => {
                let emulator = self.resources.container("emulator");
                docker(&["kill", "--signal", "KILL", &emulator])?;
                let in_effect_ms = now_ms();
                tokio::time::sleep(hold).await;
                docker(&["start", &emulator])?;
                self.connect_emulator().await?;
                Ok(Injected::held(in_effect_ms, "restarted", hold))
            }
            FaultKind::Split | FaultKind::Merge | FaultKind::UpdateShardCount => {
                self.wait_active().await?;
                let before = self.open_shards().await?;
                let in_effect_ms = now_ms();
                let description = match kind {
                    FaultKind::Split => {
                        let (shard, start, end) = before
                            .choose(rng)
                            .context("the stream has open shards")?
                            .clone();
                        self.kinesis
                            .split_shard()
                            .stream_name(STREAM)
                            .shard_to_split(&shard)
                            .new_starting_hash_key((start + (end - start) / 2 + 1).to_string())
                            .send()
                            .await?;
                        format!("split {shard}")
                    }
                    FaultKind::Merge => {
                        if before.len() < 2 {
                            return Ok(Injected {
                                in_effect_ms: now_ms(),
                                detail: "skipped: one open shard".to_owned(),
                                created_shards: Some(Vec::new()),
                            });
                        }
                        let at = rng.gen_range(0..before.len() - 1);
                        let (left, right) = (&before[at].0, &before[at + 1].0);
                        self.kinesis
                            .merge_shards()
                            .stream_name(STREAM)
                            .shard_to_merge(left)
                            .adjacent_shard_to_merge(right)
                            .send()
                            .await?;
                        format!("merged {left} and {right}")
                    }
                    _ => {
                        let open = before.len() as i32;
                        let initial = self.args.shards;
                        let target = if open > initial {
                            initial.max((open + 1) / 2)
                        } else {
                            (open * 2).min(initial * 2)
                        };
                        self.kinesis
                            .update_shard_count()
                            .stream_name(STREAM)
                            .target_shard_count(target)
                            .scaling_type(ScalingType::UniformScaling)
                            .send()
                            .await?;
                        format!("{open} to {target} shards")
                    }
                };
                self.wait_active().await?;
                let after = self.open_shards().await?;
                let created: Vec<String> = after
                    .into_iter()
                    .map(|(id, _, _)| id)
                    .filter(|id| !before.iter().any(|(old, _, _)| old == id))
                    .collect();
                Ok(Injected {
                    in_effect_ms,
                    detail: description,
                    created_shards: Some(created),
                })
            }
        }
    }
}

/// What an injection did.
struct Injected {
    /// When the fault took hold (the docker command returned, or the reshard was asked for).
    in_effect_ms: u64,
    detail: String,
    created_shards: Option<Vec<String>>,
}

impl Injected {
    fn held(in_effect_ms: u64, undone: &str, hold: Duration) -> Injected {
        Injected {
            in_effect_ms,
            detail: format!("{undone} after {:.1}s", hold.as_secs_f64()),
            created_shards: None,
        }
    }
}

/// A planned fault: when (after the warm-up), what, on which worker, for how long.
struct Planned {
    offset: Duration,
    kind: FaultKind,
    worker: usize,
    hold: Duration,
}

fn plan(args: &RunArgs, seed: u64, rng: &mut StdRng) -> Vec<Planned> {
    let failover = args.failover;
    let mut kinds = match args.schedule {
        Schedule::Short => vec![
            FaultKind::Kill,
            FaultKind::Partition,
            FaultKind::Pause,
            FaultKind::Split,
        ],
        Schedule::Long => FaultKind::ALL.to_vec(),
    };
    kinds.shuffle(rng);
    let mut planned = Vec::new();
    let mut at = Duration::ZERO;
    let mut index = 0;
    loop {
        let kind = match kinds.get(index) {
            Some(kind) => *kind,
            None if args.schedule == Schedule::Long => {
                *FaultKind::ALL.choose(rng).expect("there are fault kinds")
            }
            None => break,
        };
        index += 1;
        // Past the failover time: the lease must expire and be taken while the worker is away.
        let beyond_failover = failover * 2 + failover.mul_f64(rng.gen_range(0.0..1.0));
        let hold = match kind {
            FaultKind::Partition | FaultKind::Pause => beyond_failover,
            FaultKind::Kill => Duration::from_millis(rng.gen_range(500..3_000)),
            FaultKind::GracefulRestart => Duration::from_secs(2),
            FaultKind::EmulatorKill => Duration::from_millis(rng.gen_range(500..2_000)),
            FaultKind::Split | FaultKind::Merge | FaultKind::UpdateShardCount => Duration::ZERO,
        };
        at += failover + failover.mul_f64(rng.gen_range(0.0..1.0));
        if args.schedule == Schedule::Long && at + hold > args.duration && index > kinds.len() {
            break;
        }
        planned.push(Planned {
            offset: at,
            kind,
            worker: rng.gen_range(1..=args.workers),
            hold,
        });
        at += hold;
    }
    let _ = seed;
    planned
}

async fn run_seed(
    args: &RunArgs,
    seed: u64,
    image: &str,
    dir: &Path,
    resources: &mut RunResources,
) -> anyhow::Result<(bool, String)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let schedule = plan(args, seed, &mut rng);
    let logs = dir.join("logs");
    let data = format!("{}:/data", dir.join("data").display());
    resources.run(
        "emulator",
        image,
        &[
            "--volume",
            &data,
            "--publish",
            &format!("127.0.0.1::{EMULATOR_PORT}"),
        ],
        &["emulator", "--port", EMULATOR_PORT],
    )?;
    let mut cluster = Cluster {
        resources,
        image: image.to_owned(),
        logs: logs.clone(),
        args,
        kinesis: kcl_emulator::testcontainers::kinesis_client("http://127.0.0.1:1"),
    };
    cluster.connect_emulator().await?;
    cluster
        .kinesis
        .create_stream()
        .stream_name(STREAM)
        .shard_count(args.shards)
        .send()
        .await?;
    cluster.wait_active().await?;
    for index in 1..=args.workers {
        cluster.start_worker(index)?;
    }
    let producer_mount = format!("{}:/logs", logs.display());
    cluster.resources.run(
        "producer",
        image,
        &["--volume", &producer_mount],
        &[
            "producer",
            "--endpoint",
            &format!("http://emulator:{EMULATOR_PORT}"),
            "--stream",
            STREAM,
            "--log",
            "/logs/producer.log",
            "--keys",
            &args.keys.to_string(),
            "--interval-ms",
            &args.interval_ms.to_string(),
        ],
    )?;
    let started = now_ms();
    eprintln!(
        "seed {seed}: {} faults planned over {:.0}s",
        schedule.len(),
        schedule
            .last()
            .map_or(0.0, |p| (p.offset + p.hold).as_secs_f64())
    );
    // Warm-up: every worker takes its share of the leases before the first fault.
    let warm_up = (args.failover * 2).max(Duration::from_secs(10));
    tokio::time::sleep(warm_up).await;
    cluster.resources.check_running()?;
    let faults_start = Instant::now();
    let mut faults = Vec::new();
    for planned in schedule {
        let due = faults_start + planned.offset;
        tokio::time::sleep_until(due.into()).await;
        let target = match planned.kind {
            FaultKind::EmulatorKill => "emulator".to_owned(),
            kind if kind.is_reshard() => "stream".to_owned(),
            _ => cluster.worker_name(planned.worker),
        };
        let injected = cluster
            .inject(planned.kind, planned.worker, planned.hold, &mut rng)
            .await
            .with_context(|| format!("injecting {} on {target}", planned.kind.name()))?;
        let fault = Fault {
            kind: planned.kind,
            target,
            start_ms: injected.in_effect_ms,
            end_ms: now_ms(),
            detail: injected.detail,
            created_shards: injected.created_shards,
        };
        eprintln!(
            "seed {seed} +{:>6.1}s {:<18} {:<8} {}",
            (fault.start_ms - started) as f64 / 1000.0,
            fault.kind.name(),
            fault.target,
            fault.detail
        );
        crate::logs::AppendLog::open(&logs.join("faults.log"))?.append(&fault.line())?;
        faults.push(fault);
    }
    // Records keep flowing for a while after the last fault, then the producer stops.
    tokio::time::sleep(args.failover * 2).await;
    docker(&[
        "stop",
        "--time",
        "10",
        &cluster.resources.container("producer"),
    ])?;
    let produced_until = now_ms();

    // Drain: wait until every acknowledged record was processed, or give up.
    let drain_deadline = Instant::now() + args.failover * 3 + Duration::from_secs(120);
    let drained = loop {
        let missing = crate::report::unprocessed(&logs)?;
        if missing == 0 {
            break true;
        }
        if Instant::now() > drain_deadline {
            eprintln!("seed {seed}: {missing} acknowledged records still unprocessed at the drain deadline");
            break false;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    };
    for index in 1..=args.workers {
        let container = cluster.resources.container(&cluster.worker_name(index));
        docker(&["stop", "--time", "30", &container])?;
    }
    crate::logs::AppendLog::open(&logs.join("faults.log"))?.append(&format!(
        "T {started} {produced_until} {} {} {}\n",
        if drained { "drained" } else { "not-drained" },
        args.failover.as_millis(),
        args.coordination.as_str()
    ))?;
    let report = analyze(
        &logs,
        &faults,
        args.failover.as_millis() as u64,
        started,
        produced_until,
        drained,
    )?;
    let summary = report.summary(
        seed,
        args.mode.as_str(),
        args.coordination.as_str(),
        args.workers,
    );
    report.print_table(&faults, started);
    println!("{summary}");
    std::fs::write(dir.join("summary.txt"), format!("{summary}\n"))?;
    Ok((report.passed(), summary))
}
