//! A [`Storage`] in memory that models a machine crash, for crash tests.
//!
//! Each file has durable contents and, beyond them, what was written since its last sync; each
//! directory entry (a file created, renamed or removed) has a durable state that catches up
//! only when its directory is synced. A crash ([`MemoryStorage::restart`]) keeps only what was
//! durable, and may keep part of what a file was written since its last sync, as a power loss
//! can: the disk writes sectors in any order, so each sector written since the sync holds its
//! new bytes or its old ones (zeros where the file had not reached), and the file's length is
//! its old one, its new one or any in between.
//!
//! The power can be cut before a chosen operation ([`MemoryStorage::power_off_after`]), and
//! one operation of a kind can be made to fail ([`MemoryStorage::fail`]): the durable code
//! then runs into the crash or the error exactly where a seed puts it. Directories themselves
//! are durable once created or removed; the durable code never syncs the parent of its root.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::storage::{Storage, StorageFile};

/// The kinds of operation a failure can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpKind {
    /// Creating or opening a file, or creating a directory.
    Create,
    /// Writing to a file or cutting its length.
    Write,
    /// Syncing a file or a directory.
    Sync,
    /// Renaming a file.
    Rename,
    /// Removing a file.
    Remove,
}

/// A file system in memory whose crashes lose what a real machine's could; see the module
/// documentation. Clones share one machine.
#[derive(Debug, Clone)]
pub(crate) struct MemoryStorage {
    machine: Arc<Mutex<Machine>>,
}

#[derive(Debug)]
struct Machine {
    /// File contents by inode; an inode outlives its names while a durable name may return.
    inodes: Vec<Inode>,
    /// The names the running system sees.
    names: BTreeMap<PathBuf, usize>,
    /// The names a crash would leave.
    durable_names: BTreeMap<PathBuf, usize>,
    dirs: BTreeSet<PathBuf>,
    /// Counts restarts; handles opened before one are dead.
    boot: u64,
    /// Operations that change something, counted since the machine was made.
    operations: u64,
    /// The power goes out instead of this operation.
    power_off_at: Option<u64>,
    down: bool,
    /// The injected failure: its kind, and how many operations of that kind pass first.
    failure: Option<(OpKind, u64)>,
    rng: StdRng,
}

#[derive(Debug, Default)]
struct Inode {
    contents: Vec<u8>,
    durable: Vec<u8>,
}

fn power_is_off() -> io::Error {
    io::Error::other("the machine has lost power")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no such file: {}", path.display()),
    )
}

impl MemoryStorage {
    /// An empty machine; `seed` decides what each crash keeps of the unsynced tails.
    pub(crate) fn new(seed: u64) -> MemoryStorage {
        MemoryStorage {
            machine: Arc::new(Mutex::new(Machine {
                inodes: Vec::new(),
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                dirs: BTreeSet::from([PathBuf::from("/")]),
                boot: 0,
                operations: 0,
                power_off_at: None,
                down: false,
                failure: None,
                rng: StdRng::seed_from_u64(seed),
            })),
        }
    }

    /// This machine as the durable code takes it.
    pub(crate) fn shared(&self) -> Arc<dyn Storage> {
        Arc::new(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, Machine> {
        self.machine.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Cuts the power instead of the `n`th operation that changes something from now on
    /// (1 is the next one): it and every operation after it fail, and nothing changes any more.
    pub(crate) fn power_off_after(&self, n: u64) {
        let mut machine = self.lock();
        machine.power_off_at = Some(machine.operations + n.max(1));
    }

    /// Whether the power is off.
    pub(crate) fn is_down(&self) -> bool {
        self.lock().down
    }

    /// Makes the operation of `kind` after the next `skip` ones fail with an error, and change
    /// nothing.
    pub(crate) fn fail(&self, kind: OpKind, skip: u64) {
        self.lock().failure = Some((kind, skip));
    }

    /// Crashes the machine (if the power is still on, it goes out now) and starts it again:
    /// only what was durable is left, and with `torn_tails`, files may keep part of what was
    /// written to them since their last sync. Files opened before are dead.
    pub(crate) fn restart(&self, torn_tails: bool) {
        let mut guard = self.lock();
        let machine = &mut *guard;
        for inode in &mut machine.inodes {
            let survivor = if torn_tails {
                crash_image(&inode.durable, &inode.contents, &mut machine.rng)
            } else {
                inode.durable.clone()
            };
            inode.durable = survivor.clone();
            inode.contents = survivor;
        }
        machine.names = machine.durable_names.clone();
        machine.boot += 1;
        machine.power_off_at = None;
        machine.down = false;
        machine.failure = None;
    }

    fn open_file(
        &self,
        path: &Path,
        create: bool,
        truncate: bool,
    ) -> io::Result<Box<dyn StorageFile>> {
        let mut machine = self.lock();
        let inode = machine.open(path, create, truncate)?;
        Ok(Box::new(MemoryFile {
            machine: Arc::clone(&self.machine),
            inode,
            boot: machine.boot,
        }))
    }

    /// The contents of `path` as the running system sees them (for tests that look inside).
    pub(crate) fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let machine = self.lock();
        machine
            .names
            .get(path)
            .map(|&inode| machine.inodes[inode].contents.clone())
    }
}

/// The unit a disk writes whole: after a crash each sector holds its old or its new bytes.
const SECTOR_BYTES: usize = 512;

/// What a power loss may leave of a file whose disk holds `durable` and whose system view is
/// `contents`; see the module documentation.
fn crash_image(durable: &[u8], contents: &[u8], rng: &mut StdRng) -> Vec<u8> {
    if durable == contents {
        return durable.to_vec();
    }
    match rng.gen_range(0..4) {
        0 => return durable.to_vec(),
        1 => return contents.to_vec(),
        _ => {}
    }
    let (short, long) = if durable.len() <= contents.len() {
        (durable.len(), contents.len())
    } else {
        (contents.len(), durable.len())
    };
    let len = match rng.gen_range(0..3) {
        0 => durable.len(),
        1 => contents.len(),
        _ => rng.gen_range(short..=long),
    };
    // Past the new length (a cut that did not reach the disk) the old bytes stay; past the
    // old one (growth whose data did not reach it) there are zeros.
    let old = |at: usize| durable.get(at).copied().unwrap_or(0);
    let new = |at: usize| contents.get(at).copied().unwrap_or_else(|| old(at));
    let mut image = Vec::with_capacity(len);
    for start in (0..len).step_by(SECTOR_BYTES) {
        let end = (start + SECTOR_BYTES).min(len);
        let written = rng.gen_bool(0.5);
        image.extend((start..end).map(|at| if written { new(at) } else { old(at) }));
    }
    image
}

impl Machine {
    /// Accounts for one operation of `kind` about to change something: `Err` when the power
    /// is out (or goes out now) or the operation is the one to fail.
    fn begin(&mut self, kind: OpKind) -> io::Result<()> {
        if self.down {
            return Err(power_is_off());
        }
        self.operations += 1;
        if self.power_off_at.is_some_and(|at| self.operations >= at) {
            self.down = true;
            return Err(power_is_off());
        }
        if let Some((failing, skip)) = &mut self.failure {
            if *failing == kind {
                if *skip == 0 {
                    self.failure = None;
                    return Err(io::Error::other(format!("injected {kind:?} failure")));
                }
                *skip -= 1;
            }
        }
        Ok(())
    }

    fn check_up(&self) -> io::Result<()> {
        if self.down {
            Err(power_is_off())
        } else {
            Ok(())
        }
    }

    fn check_parent(&self, path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(dir) if self.dirs.contains(dir) => Ok(()),
            _ => Err(not_found(path)),
        }
    }

    fn new_inode(&mut self) -> usize {
        self.inodes.push(Inode::default());
        self.inodes.len() - 1
    }

    fn open(&mut self, path: &Path, create: bool, truncate: bool) -> io::Result<usize> {
        self.begin(OpKind::Create)?;
        self.check_parent(path)?;
        let inode = match self.names.get(path) {
            Some(&inode) => inode,
            None if create => {
                let inode = self.new_inode();
                self.names.insert(path.to_owned(), inode);
                inode
            }
            None => return Err(not_found(path)),
        };
        if truncate {
            self.inodes[inode].contents.clear();
        }
        Ok(inode)
    }
}

impl Storage for MemoryStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut machine = self.lock();
        machine.begin(OpKind::Create)?;
        machine.dirs.extend(dir.ancestors().map(Path::to_owned));
        Ok(())
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.lock().check_up()?;
        self.contents(path).ok_or_else(|| not_found(path))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let machine = self.lock();
        machine.check_up()?;
        if !machine.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let files = machine.names.keys();
        let subdirs = machine.dirs.iter().filter(|d| d.as_path() != dir);
        Ok(files
            .chain(subdirs)
            .filter(|path| path.parent() == Some(dir))
            .cloned()
            .collect())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn StorageFile>> {
        self.open_file(path, true, true)
    }

    fn open_append(&self, path: &Path, create: bool) -> io::Result<Box<dyn StorageFile>> {
        self.open_file(path, create, false)
    }

    // Every write of a memory file says where it goes, so appending and writing in place
    // open files alike.
    fn open_in_place(&self, path: &Path, create: bool) -> io::Result<Box<dyn StorageFile>> {
        self.open_file(path, create, false)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut machine = self.lock();
        machine.begin(OpKind::Rename)?;
        machine.check_parent(to)?;
        let inode = machine.names.remove(from).ok_or_else(|| not_found(from))?;
        machine.names.insert(to.to_owned(), inode);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut machine = self.lock();
        machine.begin(OpKind::Remove)?;
        machine
            .names
            .remove(path)
            .map(drop)
            .ok_or_else(|| not_found(path))
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut guard = self.lock();
        let machine = &mut *guard;
        machine.begin(OpKind::Remove)?;
        if !machine.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        // Like their creation, the removal of directories is durable at once here.
        machine.dirs.retain(|d| !d.starts_with(dir));
        machine.names.retain(|path, _| !path.starts_with(dir));
        machine
            .durable_names
            .retain(|path, _| !path.starts_with(dir));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut guard = self.lock();
        let machine = &mut *guard;
        machine.begin(OpKind::Sync)?;
        if !machine.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let in_dir = |path: &PathBuf| path.parent() == Some(dir);
        machine.durable_names.retain(|path, _| !in_dir(path));
        for (path, &inode) in machine.names.iter().filter(|(path, _)| in_dir(path)) {
            machine.durable_names.insert(path.clone(), inode);
        }
        Ok(())
    }
}

/// A file of a [`MemoryStorage`].
#[derive(Debug)]
struct MemoryFile {
    machine: Arc<Mutex<Machine>>,
    inode: usize,
    /// The boot the file was opened in: after a crash the handle is dead.
    boot: u64,
}

impl MemoryFile {
    fn change(&self, kind: OpKind, act: impl FnOnce(&mut Inode)) -> io::Result<()> {
        let mut machine = self.machine.lock().unwrap_or_else(|p| p.into_inner());
        if machine.boot != self.boot {
            return Err(io::Error::other("file opened before the machine crashed"));
        }
        machine.begin(kind)?;
        act(&mut machine.inodes[self.inode]);
        Ok(())
    }
}

impl StorageFile for MemoryFile {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.change(OpKind::Write, |inode| {
            inode.contents.extend_from_slice(bytes);
        })
    }

    fn write_all_at(&mut self, offset: u64, bytes: &[u8]) -> io::Result<()> {
        let at = usize::try_from(offset).expect("a file fits in memory");
        self.change(OpKind::Write, |inode| {
            if inode.contents.len() < at + bytes.len() {
                inode.contents.resize(at + bytes.len(), 0);
            }
            inode.contents[at..at + bytes.len()].copy_from_slice(bytes);
        })
    }

    fn sync_data(&mut self) -> io::Result<()> {
        self.change(OpKind::Sync, |inode| inode.durable = inode.contents.clone())
    }

    fn sync_all(&mut self) -> io::Result<()> {
        self.sync_data()
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.change(OpKind::Write, |inode| {
            inode
                .contents
                .resize(usize::try_from(len).expect("a file fits in memory"), 0);
        })
    }
}

/// What a crash test's store held after each change attempted since the last recovery, and
/// from which of those states on every acknowledged change is included.
#[derive(Debug)]
pub(crate) struct History<S> {
    pub(crate) states: Vec<S>,
    pub(crate) acknowledged: usize,
}

impl<S: Clone + PartialEq + std::fmt::Debug> History<S> {
    /// A history that starts from `initial`.
    pub(crate) fn new(initial: S) -> History<S> {
        History {
            states: vec![initial],
            acknowledged: 0,
        }
    }

    /// Checks `recovered` against the history and starts a new one from it: it must be one of
    /// the states from the last acknowledged change on.
    pub(crate) fn recovered(&mut self, recovered: S, seed: u64) {
        let found = self.states[self.acknowledged..].contains(&recovered);
        assert!(
            found,
            "seed {seed}: recovered {recovered:?}, which no prefix of the changes holding the \
             acknowledged ones made (acknowledged: {:?}, last: {:?})",
            self.states[self.acknowledged],
            self.states.last()
        );
        *self = History::new(recovered);
    }
}

/// How many seeds a crash test runs: `default`, or `KCL_CRASH_SEEDS` for long runs;
/// `KCL_CRASH_SEED` runs that one seed alone (to reproduce a failure).
pub(crate) fn seeds(default: u64) -> std::ops::Range<u64> {
    let var = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    match (var("KCL_CRASH_SEED"), var("KCL_CRASH_SEEDS")) {
        (Some(seed), _) => seed..seed + 1,
        (None, Some(count)) => 0..count,
        (None, None) => 0..default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(name: &str) -> PathBuf {
        Path::new("/data").join(name)
    }

    fn machine() -> MemoryStorage {
        machine_with_seed(7)
    }

    fn machine_with_seed(seed: u64) -> MemoryStorage {
        let storage = MemoryStorage::new(seed);
        storage.create_dir_all(Path::new("/data")).unwrap();
        storage
    }

    #[test]
    fn only_synced_contents_and_synced_entries_survive_a_crash() {
        let storage = machine();
        let mut synced = storage.create(&path("a")).unwrap();
        synced.write_all(b"kept").unwrap();
        synced.sync_data().unwrap();
        storage.sync_dir(Path::new("/data")).unwrap();
        synced.write_all(b" lost").unwrap();
        let mut unnamed = storage.create(&path("b")).unwrap();
        unnamed.write_all(b"synced, but its entry is not").unwrap();
        unnamed.sync_all().unwrap();
        storage.rename(&path("a"), &path("c")).unwrap();
        storage.restart(false);
        assert_eq!(storage.read(&path("a")).unwrap(), b"kept");
        assert_eq!(
            storage.read(&path("b")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert!(storage.read(&path("c")).is_err());
        assert!(synced.write_all(b"x").is_err(), "handles die in a crash");
    }

    #[test]
    fn torn_tails_keep_a_prefix_or_zeros_of_the_pending_bytes() {
        let mut outcomes = BTreeSet::new();
        for seed in 0..64 {
            let storage = machine_with_seed(seed);
            let mut file = storage.create(&path("log")).unwrap();
            file.write_all(b"durable|").unwrap();
            file.sync_data().unwrap();
            storage.sync_dir(Path::new("/data")).unwrap();
            file.write_all(b"pending").unwrap();
            storage.restart(true);
            let after = storage.read(&path("log")).unwrap();
            let tail = after.strip_prefix(b"durable|".as_slice()).unwrap().to_vec();
            assert!(tail.len() <= 7);
            assert!(
                b"pending".starts_with(&tail) || tail.iter().all(|&b| b == 0),
                "{tail:?}"
            );
            outcomes.insert(tail);
        }
        assert!(outcomes.contains(b"".as_slice()));
        assert!(outcomes.contains(b"pending".as_slice()));
        assert!(outcomes.len() > 4, "{outcomes:?}");
    }

    #[test]
    fn sectors_written_since_the_sync_survive_one_by_one_in_any_order() {
        const SECTORS: usize = 4;
        let mut outcomes = BTreeSet::new();
        for seed in 0..128 {
            let storage = machine_with_seed(seed);
            let mut file = storage.open_in_place(&path("log"), true).unwrap();
            file.write_all_at(0, &[b'o'; SECTORS * SECTOR_BYTES])
                .unwrap();
            file.sync_data().unwrap();
            storage.sync_dir(Path::new("/data")).unwrap();
            // Overwrite every sector in place, and grow the file by one more.
            file.write_all_at(0, &[b'n'; (SECTORS + 1) * SECTOR_BYTES])
                .unwrap();
            storage.restart(true);
            let after = storage.read(&path("log")).unwrap();
            assert!(
                after.len() >= SECTORS * SECTOR_BYTES,
                "the old length was durable"
            );
            let sectors: Vec<u8> = after
                .chunks(SECTOR_BYTES)
                .map(|sector| {
                    let first = sector[0];
                    assert!(
                        sector.iter().all(|&b| b == first),
                        "a torn sector: {sector:?}"
                    );
                    first
                })
                .collect();
            for (i, &byte) in sectors.iter().enumerate() {
                let old = if i < SECTORS { b'o' } else { 0 };
                assert!(
                    byte == old || byte == b'n',
                    "seed {seed}: sector {i} holds {byte}"
                );
            }
            outcomes.insert(sectors);
        }
        let out_of_order = outcomes
            .iter()
            .any(|sectors| sectors.windows(2).any(|w| w[0] != b'n' && w[1] == b'n'));
        assert!(
            out_of_order,
            "a later sector survives an earlier one: {outcomes:?}"
        );
        assert!(outcomes.contains(&vec![b'o'; SECTORS]));
        assert!(outcomes.contains(&vec![b'n'; SECTORS + 1]));
    }

    #[test]
    fn a_removed_directory_takes_its_files_along_for_good() {
        let storage = machine();
        let sub = Path::new("/data/sub");
        storage.create_dir_all(sub).unwrap();
        let mut file = storage.create(&sub.join("f")).unwrap();
        file.sync_all().unwrap();
        storage.sync_dir(sub).unwrap();
        storage.remove_dir_all(sub).unwrap();
        assert!(storage.list(Path::new("/data")).unwrap().is_empty());
        storage.restart(true);
        assert!(storage.list(Path::new("/data")).unwrap().is_empty());
        assert!(storage.read(&sub.join("f")).is_err());
    }

    #[test]
    fn power_off_and_injected_failures_hit_the_chosen_operation() {
        let storage = machine();
        storage.fail(OpKind::Write, 1);
        let mut file = storage.create(&path("log")).unwrap();
        file.write_all(b"one").unwrap();
        assert!(file.write_all(b"two").is_err());
        file.write_all(b"three").unwrap();
        assert_eq!(storage.contents(&path("log")).unwrap(), b"onethree");
        storage.power_off_after(2);
        file.sync_data().unwrap();
        assert!(storage.sync_dir(Path::new("/data")).is_err());
        assert!(storage.is_down());
        assert!(storage.read(&path("log")).is_err());
        storage.restart(false);
        assert!(
            storage.read(&path("log")).is_err(),
            "the entry was never synced"
        );
    }
}
