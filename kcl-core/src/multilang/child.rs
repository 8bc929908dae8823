//! One child process per shard: start it, hand it actions, answer its checkpoint requests.
//!
//! Better than the Java daemon where that one fails users: a child that exits, crashes, or
//! takes longer than the configured timeout for one action is an error for that shard only
//! (the caller kills it and restarts the shard from its checkpoint); lines on stdout that are
//! not protocol messages are logged and skipped instead of wedging the shard; the child's
//! stderr is forwarded to the log line by line with the shard id, including a last line
//! without a newline (amazon_kclpy's sample writes all its lines that way), which is
//! forwarded once the child closes stderr, before the daemon exits.

use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

use super::protocol::{parse_child_line, ChildMessage, DaemonMessage};

/// Why talking to a child failed. Every variant ends the child's usefulness: the caller kills it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChildError {
    /// The executable could not be started.
    #[error("starting {command:?}")]
    Spawn {
        /// The command line.
        command: Vec<String>,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The child closed its stdout (exited or crashed) before answering.
    #[error("the child exited while handling {action}")]
    Exited {
        /// The action in flight.
        action: &'static str,
    },
    /// The child took longer than the timeout for one action.
    #[error("the child did not finish {action} within {after:?}")]
    Timeout {
        /// The action in flight.
        action: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The child answered with a status for another action.
    #[error("the child answered {got} while handling {action}")]
    Protocol {
        /// The action in flight.
        action: &'static str,
        /// What it answered.
        got: String,
    },
    /// Writing to or reading from the child failed.
    #[error("talking to the child")]
    Io(#[from] std::io::Error),
}

/// Serves a child's checkpoint requests during one action.
#[async_trait]
pub trait CheckpointRequests: Send {
    /// Checkpoints at the given position (`None` = the last record delivered). Returns the
    /// position written, or the Java exception name the child should see.
    async fn checkpoint(
        &mut self,
        sequence_number: Option<String>,
        sub_sequence_number: Option<u64>,
    ) -> Result<(Option<String>, Option<u64>), String>;
}

/// Refuses every checkpoint: what `initialize` and `leaseLost` get, as in the Java daemon.
#[derive(Debug, Clone, Copy)]
pub struct NoCheckpoints(pub &'static str);

#[async_trait]
impl CheckpointRequests for NoCheckpoints {
    async fn checkpoint(
        &mut self,
        _sequence_number: Option<String>,
        _sub_sequence_number: Option<u64>,
    ) -> Result<(Option<String>, Option<u64>), String> {
        Err(self.0.to_owned())
    }
}

/// A running child process speaking the protocol.
#[derive(Debug)]
pub struct ChildProcess {
    shard_id: String,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    timeout: Option<Duration>,
    stderr: Option<JoinHandle<()>>,
}

/// The longest stderr text forwarded as one log event: a child writing without newlines is
/// forwarded in pieces of about this size instead of being held in memory until it exits.
const MAX_STDERR_EVENT: usize = 8 * 1024;

/// How long stopping or killing a child waits for the rest of its stderr after it exited. Only
/// a grandchild that inherited the pipe keeps it open longer; its output is then still
/// forwarded in the background, and [`forward_remaining_stderr`] waits for it at exit.
const STDERR_DRAIN: Duration = Duration::from_secs(2);

/// Every child's stderr forwarder, so that the daemon can wait for all of them before exiting.
fn stderr_forwarders() -> &'static TaskTracker {
    static FORWARDERS: OnceLock<TaskTracker> = OnceLock::new();
    FORWARDERS.get_or_init(TaskTracker::new)
}

/// Waits up to `within` until the stderr of every child this process started has been
/// forwarded to the log up to its end; returns whether it all was. The daemon calls this
/// before it exits, so that a child's last words (often a line without a newline, flushed when
/// the child exits) are not lost with the process.
pub async fn forward_remaining_stderr(within: Duration) -> bool {
    let forwarders = stderr_forwarders();
    forwarders.close();
    let done = tokio::time::timeout(within, forwarders.wait())
        .await
        .is_ok();
    forwarders.reopen();
    done
}

/// Copies `stderr` to the log, one event per line, until its end. A line is forwarded in
/// pieces when it grows past [`MAX_STDERR_EVENT`], and what follows the last newline is
/// forwarded at the end; bytes that are not UTF-8 are replaced, not a reason to stop.
async fn forward_stderr(stderr: impl AsyncRead + Unpin, shard_id: String) {
    let mut reader = BufReader::new(stderr);
    let mut pending = Vec::new();
    loop {
        let available = match reader.fill_buf().await {
            Ok([]) => break,
            Ok(available) => available,
            Err(err) => {
                tracing::debug!(%shard_id, error = %err, "reading the child's stderr");
                break;
            }
        };
        let (taken, line_ended) = match available.iter().position(|b| *b == b'\n') {
            Some(newline) => (newline + 1, true),
            None => (available.len(), false),
        };
        pending.extend_from_slice(&available[..taken]);
        reader.consume(taken);
        if line_ended || pending.len() >= MAX_STDERR_EVENT {
            log_stderr(&shard_id, &pending);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        log_stderr(&shard_id, &pending);
    }
}

fn log_stderr(shard_id: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let line = text.trim_end_matches(['\n', '\r']);
    tracing::warn!(shard_id, "child stderr: {line}");
}

impl ChildProcess {
    /// Starts `command` (no shell) for `shard_id`. Its stderr goes to the log.
    ///
    /// # Errors
    /// [`ChildError::Spawn`] when the executable cannot be started.
    pub fn spawn(
        command: &[String],
        shard_id: &str,
        timeout: Option<Duration>,
    ) -> Result<ChildProcess, ChildError> {
        let spawn_error = |source| ChildError::Spawn {
            command: command.to_vec(),
            source,
        };
        let (program, args) = command
            .split_first()
            .ok_or_else(|| spawn_error(std::io::Error::other("empty executableName")))?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_error)?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let stderr = child
            .stderr
            .take()
            .map(|stderr| stderr_forwarders().spawn(forward_stderr(stderr, shard_id.to_owned())));
        Ok(ChildProcess {
            shard_id: shard_id.to_owned(),
            child,
            stdin,
            stdout,
            timeout,
            stderr,
        })
    }

    /// Sends `message` and serves the child until it reports `status` for it.
    ///
    /// # Errors
    /// [`ChildError`] when the child exits, times out, or breaks the protocol.
    pub async fn call(
        &mut self,
        message: &DaemonMessage,
        checkpoints: &mut dyn CheckpointRequests,
    ) -> Result<(), ChildError> {
        let action = message.action();
        let timeout = self.timeout;
        let exchange = self.exchange(message, checkpoints);
        match timeout {
            Some(after) => tokio::time::timeout(after, exchange)
                .await
                .unwrap_or(Err(ChildError::Timeout { action, after })),
            None => exchange.await,
        }
    }

    async fn exchange(
        &mut self,
        message: &DaemonMessage,
        checkpoints: &mut dyn CheckpointRequests,
    ) -> Result<(), ChildError> {
        let action = message.action();
        self.write(message)
            .await
            .map_err(|_| ChildError::Exited { action })?;
        loop {
            let Some(line) = self.stdout.next_line().await? else {
                return Err(ChildError::Exited { action });
            };
            match parse_child_line(&line) {
                Ok(None) => {}
                Ok(Some(ChildMessage::Status { response_for })) if response_for == action => {
                    return Ok(())
                }
                Ok(Some(ChildMessage::Status { response_for })) => {
                    return Err(ChildError::Protocol {
                        action,
                        got: format!("status for {response_for}"),
                    })
                }
                Ok(Some(ChildMessage::Checkpoint {
                    sequence_number,
                    sub_sequence_number,
                })) => {
                    let answer = match checkpoints
                        .checkpoint(sequence_number.clone(), sub_sequence_number)
                        .await
                    {
                        Ok((sequence_number, sub_sequence_number)) => DaemonMessage::Checkpoint {
                            sequence_number,
                            sub_sequence_number,
                            error: None,
                        },
                        Err(error) => DaemonMessage::Checkpoint {
                            sequence_number,
                            sub_sequence_number,
                            error: Some(error),
                        },
                    };
                    self.write(&answer)
                        .await
                        .map_err(|_| ChildError::Exited { action })?;
                }
                Err(err) => {
                    tracing::warn!(shard_id = %self.shard_id, action, error = %err, line = %line, "skipping a line that is not a protocol message");
                }
            }
        }
    }

    async fn write(&mut self, message: &DaemonMessage) -> std::io::Result<()> {
        let mut line = message.to_line();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await
    }

    /// Closes the child's stdin and waits up to `grace` for it to exit, then kills it; returns
    /// once what it wrote to stderr has been forwarded.
    pub async fn stop(mut self, grace: Duration) {
        drop(self.stdin);
        if tokio::time::timeout(grace, self.child.wait())
            .await
            .is_err()
        {
            tracing::warn!(shard_id = %self.shard_id, "child did not exit in time; killing it");
            let _ = self.child.kill().await;
        }
        Self::drain_stderr(&self.shard_id, self.stderr.take()).await;
    }

    /// Kills the child at once; returns once what it wrote to stderr has been forwarded.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
        Self::drain_stderr(&self.shard_id, self.stderr.take()).await;
    }

    async fn drain_stderr(shard_id: &str, forwarder: Option<JoinHandle<()>>) {
        let Some(forwarder) = forwarder else { return };
        if tokio::time::timeout(STDERR_DRAIN, forwarder).await.is_err() {
            tracing::debug!(
                shard_id,
                "the child's stderr is still open after it exited; forwarding it in the background"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted child in Python: `behaviour` decides what it does with processRecords.
    fn child(behaviour: &str, timeout: Option<Duration>) -> ChildProcess {
        let script = format!(
            r#"
import json, sys, time
def send(msg):
    sys.stdout.write("\n" + json.dumps(msg) + "\n"); sys.stdout.flush()
for line in sys.stdin:
    msg = json.loads(line)
    action = msg["action"]
    if action == "processRecords":
        behaviour = {behaviour:?}
        if behaviour == "crash":
            sys.exit(3)
        if behaviour == "hang":
            time.sleep(60)
        if behaviour == "garbage":
            print("debug output that is not JSON", flush=True)
        send({{"action": "checkpoint", "sequenceNumber": None, "subSequenceNumber": None}})
        answer = json.loads(sys.stdin.readline())
        sys.stderr.write("checkpoint answer: " + json.dumps(answer) + "\n"); sys.stderr.flush()
        if answer["error"] is not None:
            sys.exit(4)
    if action == "initialize":
        send({{"action": "checkpoint", "sequenceNumber": None, "subSequenceNumber": None}})
        answer = json.loads(sys.stdin.readline())
        if answer["error"] != "InvalidStateException":
            sys.exit(5)
    send({{"action": "status", "responseFor": action}})
"#
        );
        ChildProcess::spawn(
            &["python3".to_owned(), "-c".to_owned(), script],
            "shardId-000000000000",
            timeout,
        )
        .expect("python3 starts")
    }

    struct Recorder(Vec<Option<String>>);

    #[async_trait]
    impl CheckpointRequests for Recorder {
        async fn checkpoint(
            &mut self,
            sequence_number: Option<String>,
            sub_sequence_number: Option<u64>,
        ) -> Result<(Option<String>, Option<u64>), String> {
            self.0.push(sequence_number.clone());
            Ok((
                sequence_number.or(Some("49".to_owned())),
                sub_sequence_number.or(Some(0)),
            ))
        }
    }

    fn batch() -> DaemonMessage {
        DaemonMessage::ProcessRecords {
            millis_behind_latest: 0,
            records: Vec::new(),
        }
    }

    fn init() -> DaemonMessage {
        DaemonMessage::Initialize {
            shard_id: "shardId-000000000000".into(),
            sequence_number: None,
            sub_sequence_number: None,
        }
    }

    #[tokio::test]
    async fn a_checkpoint_round_trip_completes_the_action() {
        for behaviour in ["normal", "garbage"] {
            let mut child = child(behaviour, None);
            child
                .call(&init(), &mut NoCheckpoints("InvalidStateException"))
                .await
                .unwrap();
            let mut recorder = Recorder(Vec::new());
            child.call(&batch(), &mut recorder).await.unwrap();
            assert_eq!(recorder.0, vec![None], "{behaviour}");
            child
                .call(&DaemonMessage::ShutdownRequested, &mut recorder)
                .await
                .unwrap();
            child.stop(Duration::from_secs(5)).await;
        }
    }

    #[tokio::test]
    async fn a_crash_mid_batch_is_an_error_for_that_call() {
        let mut child = child("crash", None);
        child
            .call(&init(), &mut NoCheckpoints("InvalidStateException"))
            .await
            .unwrap();
        let err = child
            .call(&batch(), &mut Recorder(Vec::new()))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ChildError::Exited {
                    action: "processRecords"
                }
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_hung_child_times_out() {
        // Long enough for a Python child to start on a loaded machine; the hang is for ever.
        let mut child = child("hang", Some(Duration::from_secs(3)));
        child
            .call(&init(), &mut NoCheckpoints("InvalidStateException"))
            .await
            .unwrap();
        let err = child
            .call(&batch(), &mut Recorder(Vec::new()))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                ChildError::Timeout {
                    action: "processRecords",
                    ..
                }
            ),
            "{err}"
        );
        child.kill().await;
    }

    #[tokio::test]
    async fn a_missing_executable_is_a_spawn_error() {
        let err =
            ChildProcess::spawn(&["/nonexistent/processor".to_owned()], "s", None).unwrap_err();
        assert!(matches!(err, ChildError::Spawn { .. }));
    }
}
