//! Group commit: the one way durable files are appended to and synced.
//!
//! Writers queue entries for a log, in the order they must reach it (callers queue while
//! holding whatever lock orders their changes), and learn when the entry is durable. One
//! committer thread takes everything queued so far, writes each entry to its log, then syncs
//! every log the batch touched once: however many writers were waiting, one `fdatasync` per log
//! covers them all. A writer that queued while a sync was running rides on the next one.
//!
//! An entry whose loss in a crash is harmless can be queued without calling for a sync
//! ([`Committer::queue_unsynced`]): it is written in its place, and the next sync of its log,
//! which the next entry that is waited for calls, covers it. A batch of such entries alone is
//! written and not synced, so a writer that waits never queues behind a sync nobody needs.
//!
//! After a failed write or sync a log's tail is unknown (a later frame could sit behind
//! garbage and be cut off at recovery), so the log refuses every later entry. Entries are
//! completed in the order they were queued, each with its own outcome.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// A file (or set of files) the committer appends to.
pub(crate) trait CommitLog: Send + 'static {
    /// What one writer queues.
    type Entry: Send + 'static;
    /// Writes `entry` (not yet durable).
    fn write(&mut self, entry: &Self::Entry) -> io::Result<()>;
    /// Makes everything written so far durable.
    fn sync(&mut self) -> io::Result<()>;
}

/// A log shared between its writers and the committer.
#[derive(Debug)]
pub(crate) struct SharedLog<L> {
    state: Mutex<Guarded<L>>,
    /// Mirrors `Guarded::failure`, readable without waiting for a sync in progress.
    failed: AtomicBool,
}

#[derive(Debug)]
struct Guarded<L> {
    log: L,
    failure: Option<String>,
}

impl<L> SharedLog<L> {
    pub(crate) fn new(log: L) -> Arc<SharedLog<L>> {
        Arc::new(SharedLog {
            state: Mutex::new(Guarded { log, failure: None }),
            failed: AtomicBool::new(false),
        })
    }

    /// Whether a write or sync has failed: the log takes no more entries.
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Runs `act` on the log, waiting for any write or sync in progress.
    pub(crate) fn with<T>(&self, act: impl FnOnce(&mut L) -> T) -> T {
        act(&mut self.lock().log)
    }

    fn lock(&self) -> MutexGuard<'_, Guarded<L>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<L: CommitLog> SharedLog<L> {
    fn step(&self, act: impl FnOnce(&mut L) -> io::Result<()>) -> io::Result<()> {
        let mut guard = self.lock();
        if let Some(reason) = &guard.failure {
            return Err(io::Error::other(format!(
                "log unusable after an earlier failure: {reason}"
            )));
        }
        let result = act(&mut guard.log);
        if let Err(err) = &result {
            guard.failure = Some(err.to_string());
            self.failed.store(true, Ordering::Release);
        }
        result
    }
}

/// What the committer calls once an entry is durable (or failed to be).
pub(crate) type OnDurable = Box<dyn FnOnce(io::Result<()>) + Send>;

struct Job<L: CommitLog> {
    /// `None` for a barrier: it only waits for what was queued before it.
    append: Option<(Arc<SharedLog<L>>, L::Entry)>,
    /// Whether the entry's log must be synced before `on_durable` is called.
    sync: bool,
    on_durable: OnDurable,
}

/// Handle to a committer thread. The thread stops once every handle is dropped and the queue
/// is drained.
pub(crate) struct Committer<L: CommitLog> {
    jobs: mpsc::Sender<Job<L>>,
}

impl<L: CommitLog> Clone for Committer<L> {
    fn clone(&self) -> Self {
        Committer {
            jobs: self.jobs.clone(),
        }
    }
}

impl<L: CommitLog> std::fmt::Debug for Committer<L> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Committer").finish_non_exhaustive()
    }
}

/// Resolves once an entry is durable; see [`Committer::queue`]. It can be waited for either
/// way: a blocking wait must not poll a Tokio future (inside a task whose cooperative budget is
/// spent, such a poll never completes), so the outcome comes on two channels.
#[derive(Debug)]
pub(crate) struct Ticket {
    outcome: oneshot::Receiver<io::Result<()>>,
    blocking: mpsc::Receiver<io::Result<()>>,
}

impl Ticket {
    /// A ticket, and the completion that resolves it.
    fn new() -> (OnDurable, Ticket) {
        let (send, outcome) = oneshot::channel();
        let (send_blocking, blocking) = mpsc::sync_channel(1);
        let complete: OnDurable = Box::new(move |result: io::Result<()>| {
            let copy = match &result {
                Ok(()) => Ok(()),
                Err(err) => Err(io::Error::new(err.kind(), err.to_string())),
            };
            let _ = send_blocking.send(copy);
            let _ = send.send(result);
        });
        (complete, Ticket { outcome, blocking })
    }

    /// Waits without blocking the thread.
    pub(crate) async fn durable(self) -> io::Result<()> {
        self.outcome.await.unwrap_or_else(|_| Err(stopped()))
    }

    /// Blocks the thread until the entry is durable. The committer is a thread of its own, so
    /// this is safe from any context; it only costs the caller its thread for one sync.
    pub(crate) fn wait(self) -> io::Result<()> {
        self.blocking.recv().unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> io::Error {
    io::Error::other("the committer stopped")
}

impl<L: CommitLog> Committer<L> {
    /// Starts a committer thread called `name`.
    pub(crate) fn start(name: &str) -> io::Result<Committer<L>> {
        let (jobs, queue) = mpsc::channel::<Job<L>>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || commit_loop(&queue))?;
        Ok(Committer { jobs })
    }

    /// Queues `entry` for `log`; `on_durable` is called from the committer thread with the
    /// outcome. Entries of one log are written in the order they are queued.
    pub(crate) fn submit(&self, log: &Arc<SharedLog<L>>, entry: L::Entry, on_durable: OnDurable) {
        self.send(Job {
            append: Some((Arc::clone(log), entry)),
            sync: true,
            on_durable,
        });
    }

    /// Queues `entry` for `log` after everything queued before, without calling for a sync:
    /// the entry is durable once a later entry of the same log has been synced. A failed write
    /// shows in [`SharedLog::has_failed`] and fails every later entry.
    pub(crate) fn queue_unsynced(&self, log: &Arc<SharedLog<L>>, entry: L::Entry) {
        self.send(Job {
            append: Some((Arc::clone(log), entry)),
            sync: false,
            on_durable: Box::new(drop),
        });
    }

    /// Queues `entry` for `log`, as [`Committer::submit`] does, and returns its ticket.
    pub(crate) fn queue(&self, log: &Arc<SharedLog<L>>, entry: L::Entry) -> Ticket {
        let (complete, ticket) = Ticket::new();
        self.submit(log, entry, complete);
        ticket
    }

    /// A ticket that resolves once everything queued before it has been written and synced
    /// (or has failed): after it, the committer holds no reference to any earlier log.
    pub(crate) fn barrier(&self) -> Ticket {
        let (complete, ticket) = Ticket::new();
        self.send(Job {
            append: None,
            sync: false,
            on_durable: complete,
        });
        ticket
    }

    fn send(&self, job: Job<L>) {
        if let Err(mpsc::SendError(job)) = self.jobs.send(job) {
            (job.on_durable)(Err(stopped()));
        }
    }
}

fn commit_loop<L: CommitLog>(queue: &mpsc::Receiver<Job<L>>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter());
        let mut written = Vec::with_capacity(batch.len());
        let mut touched: Vec<Arc<SharedLog<L>>> = Vec::new();
        for job in &batch {
            let Some((log, entry)) = &job.append else {
                written.push(Ok(()));
                continue;
            };
            written.push(log.step(|log| log.write(entry)));
            if job.sync && !touched.iter().any(|t| Arc::ptr_eq(t, log)) {
                touched.push(Arc::clone(log));
            }
        }
        // One sync per log an entry that is waited for touched covers every entry of the batch:
        // this is the group commit.
        let sync_failures: Vec<(Arc<SharedLog<L>>, String)> = touched
            .into_iter()
            .filter_map(|log| match log.step(|log| log.sync()) {
                Ok(()) => None,
                Err(err) => {
                    tracing::error!(error = %err, "log sync failed");
                    Some((log, err.to_string()))
                }
            })
            .collect();
        for (job, result) in batch.into_iter().zip(written) {
            let sync_failure = job.append.as_ref().and_then(|(log, _)| {
                sync_failures
                    .iter()
                    .find(|(failed, _)| Arc::ptr_eq(failed, log))
                    .map(|(_, message)| message)
            });
            let outcome = match (result, sync_failure) {
                (Err(err), _) => Err(err),
                (Ok(()), Some(message)) => Err(io::Error::other(message.clone())),
                (Ok(()), None) => Ok(()),
            };
            (job.on_durable)(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log in memory that counts syncs and can be made to fail.
    #[derive(Default)]
    struct Counting {
        written: Vec<u32>,
        durable: usize,
        syncs: usize,
        fail_writes_of: Option<u32>,
    }

    impl CommitLog for Counting {
        type Entry = u32;

        fn write(&mut self, entry: &u32) -> io::Result<()> {
            if self.fail_writes_of == Some(*entry) {
                return Err(io::Error::other("disk full"));
            }
            self.written.push(*entry);
            Ok(())
        }

        fn sync(&mut self) -> io::Result<()> {
            self.syncs += 1;
            self.durable = self.written.len();
            Ok(())
        }
    }

    #[test]
    fn entries_are_written_in_order_and_share_syncs() {
        let log = SharedLog::new(Counting::default());
        let committer = Committer::start("test-commit").unwrap();
        // Holding the log stalls the committer, so the entries below pile up into one batch.
        let stalled = log.lock();
        let tickets: Vec<Ticket> = (0..50).map(|i| committer.queue(&log, i)).collect();
        drop(stalled);
        for ticket in tickets {
            ticket.wait().unwrap();
        }
        log.with(|log| {
            assert_eq!(log.written, (0..50).collect::<Vec<_>>());
            assert_eq!(log.durable, 50);
            assert!(log.syncs < 50, "{} syncs for 50 entries", log.syncs);
        });
    }

    #[test]
    fn after_a_failed_write_the_log_refuses_every_later_entry() {
        let log = SharedLog::new(Counting {
            fail_writes_of: Some(2),
            ..Counting::default()
        });
        let committer = Committer::start("test-commit").unwrap();
        let outcomes: Vec<bool> = (0..5)
            .map(|i| committer.queue(&log, i).wait().is_ok())
            .collect();
        assert_eq!(outcomes, vec![true, true, false, false, false]);
        assert!(log.has_failed());
        log.with(|log| assert_eq!(log.written, vec![0, 1]));
        // A barrier only waits: it succeeds on a failed log too.
        committer.barrier().wait().unwrap();
    }

    #[test]
    fn unsynced_entries_wait_in_order_for_the_next_entry_that_is_waited_for() {
        let log = SharedLog::new(Counting::default());
        let committer = Committer::start("test-commit").unwrap();
        committer.queue_unsynced(&log, 1);
        committer.queue_unsynced(&log, 2);
        committer.barrier().wait().unwrap();
        log.with(|log| {
            assert_eq!(log.written, vec![1, 2]);
            assert_eq!(log.syncs, 0, "nobody waits for them: no sync");
        });
        committer.queue(&log, 3).wait().unwrap();
        log.with(|log| {
            assert_eq!(log.written, vec![1, 2, 3]);
            assert_eq!((log.durable, log.syncs), (3, 1));
        });
    }

    #[test]
    fn a_barrier_resolves_after_everything_queued_before_it() {
        let log = SharedLog::new(Counting::default());
        let committer = Committer::start("test-commit").unwrap();
        let stalled = log.lock();
        let first = committer.queue(&log, 1);
        let barrier = committer.barrier();
        drop(stalled);
        barrier.wait().unwrap();
        log.with(|log| assert_eq!(log.durable, 1));
        first.wait().unwrap();
    }
}
