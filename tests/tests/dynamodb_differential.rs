//! A differential test of the emulator's DynamoDB against `moto_server`, an independent
//! implementation: seeded sequences of the requests lease tables and the KCL 3 protocol make
//! run against a fresh table on each server through `aws-sdk-dynamodb`, and every response is
//! compared field by field (success or error code, returned attributes, items, counts, page
//! keys), then the final contents of both tables.
//!
//! The shapes: conditional PutItem (create-if-absent), UpdateItem fenced on `leaseCounter`,
//! `leaseOwner` and `checkpointOwner` with SET/REMOVE/ADD and every ReturnValues, the legacy
//! `Expected`/`AttributeUpdates` forms the Java KCL writes with, conditional DeleteItem,
//! GetItem, queries of the `LeaseOwnerToLeaseKeyIndex` GSI paged by `Limit`, scans paged by
//! `Limit` while the item each page ended on is deleted before the next page, BatchGetItem
//! and BatchWriteItem, plus a few malformed requests both must refuse.
//!
//! Where moto departs from AWS's documented behaviour, [`ALLOWANCES`] names the shape, what
//! the comparison does instead (the emulator alone must refuse the request, moto is sent the
//! documented equivalent, or one field is compared more loosely), and the documentation that
//! says moto is wrong. Left out altogether: UpdateItem with neither an UpdateExpression nor
//! AttributeUpdates, which moto_server answers with an HTML error page.
//!
//! Running it:
//! - `cargo test -p kcl-integration-tests --test dynamodb_differential` runs the CI seed set.
//! - `KCL_DIFF_SEEDS=1000 cargo test -p kcl-integration-tests --test dynamodb_differential --
//!   --nocapture` runs seeds 0..1000 and prints the totals.
//! - `KCL_DIFF_SEED=n ...` replays seed `n` alone; a mismatch prints its seed, the request
//!   sequence, and both servers' answers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeAction, AttributeDefinition, AttributeValue as AV, AttributeValueUpdate, BillingMode,
    ComparisonOperator, DeleteRequest, ExpectedAttributeValue, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, PutRequest,
    ReturnValue, ReturnValuesOnConditionCheckFailure, ScalarAttributeType, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use kcl_integration_tests::python::MotoServer;
use kcl_integration_tests::{dynamodb_client, start_emulator, unique_name};
use kcl_lease::OWNER_INDEX;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// Seeds the CI run covers (0..CI_SEEDS): enough for every shape to occur many times, small
/// enough to keep the test (moto's start included) well under a minute.
const CI_SEEDS: u64 = 30;

/// The lease keys a sequence works on: few, so that requests collide on the same items.
const KEYS: [&str; 5] = [
    "shardId-000000000000",
    "shardId-000000000001",
    "shardId-000000000002",
    "shardId-000000000003",
    "shardId-000000000004",
];
const OWNERS: [&str; 3] = ["worker-a", "worker-b", "worker-c"];
/// Counters written and expected stay small, so fencing conditions both pass and fail.
const MAX_COUNTER: i64 = 3;
/// Throughput values as the Java KCL's doubles print them, trailing zeros included.
const THROUGHPUTS: [&str; 4] = ["0", "12.5", "12.0", "1024.25"];
const CHECKPOINTS: [&str; 3] = [
    "TRIM_HORIZON",
    "49590338271490256608559692538361571095921575989136588898",
    "SHARD_END",
];

// ---------------------------------------------------------------------------------------------
// Requests

/// A whole lease item, as a PutItem writes it.
#[derive(Debug, Clone)]
struct Lease {
    key: &'static str,
    owner: Option<&'static str>,
    counter: i64,
    checkpoint: &'static str,
    checkpoint_owner: Option<&'static str>,
    throughput: Option<&'static str>,
    parents: Vec<&'static str>,
}

impl Lease {
    fn item(&self) -> HashMap<String, AV> {
        let mut item = HashMap::from([
            ("leaseKey".to_owned(), s(self.key)),
            ("leaseCounter".to_owned(), n(self.counter)),
            ("checkpoint".to_owned(), s(self.checkpoint)),
            ("checkpointSubSequenceNumber".to_owned(), n(0)),
            ("ownerSwitchesSinceCheckpoint".to_owned(), n(0)),
        ]);
        if let Some(owner) = self.owner {
            item.insert("leaseOwner".to_owned(), s(owner));
        }
        if let Some(owner) = self.checkpoint_owner {
            item.insert("checkpointOwner".to_owned(), s(owner));
        }
        if let Some(kbps) = self.throughput {
            item.insert("throughputKBps".to_owned(), AV::N(kbps.to_owned()));
        }
        if !self.parents.is_empty() {
            item.insert(
                "parentShardId".to_owned(),
                AV::Ss(self.parents.iter().map(|p| (*p).to_owned()).collect()),
            );
        }
        item
    }
}

/// A condition expression over a lease.
#[derive(Debug, Clone)]
enum Condition {
    /// `attribute_not_exists(leaseKey)`: create if absent.
    Absent,
    /// `attribute_exists(leaseKey)`.
    Present,
    CounterIs(i64),
    OwnerIs(&'static str),
    OwnerAbsent,
    CheckpointOwnerIs(&'static str),
    CheckpointOwnerAbsent,
    And(Box<Condition>, Box<Condition>),
    Or(Box<Condition>, Box<Condition>),
    /// The expression equivalent of a legacy `Expected` entry, as AWS's guide on legacy
    /// conditional parameters maps them (only moto is sent these; see [`ALLOWANCES`]).
    Expected(&'static str, Expect),
}

/// One action of an update expression.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    SetOwner(&'static str),
    RemoveOwner,
    SetCheckpointOwner(&'static str),
    RemoveCheckpointOwner,
    SetCheckpoint(&'static str),
    /// `SET leaseCounter = leaseCounter + :one`: refused when the counter does not exist.
    IncrementCounter,
    /// `SET leaseCounter = if_not_exists(leaseCounter, :zero) + :one`.
    IncrementCounterOrStart,
    /// `ADD leaseCounter :one`.
    AddCounter,
    AddOwnerSwitches,
    SetThroughput(&'static str),
    AddParent(&'static str),
    /// `SET leaseKey = :key`: key attributes cannot be updated.
    SetKey(&'static str),
}

/// A scalar in the legacy forms.
#[derive(Debug, Clone)]
enum Scalar {
    S(&'static str),
    N(i64),
}

impl Scalar {
    fn value(&self) -> AV {
        match self {
            Scalar::S(v) => s(v),
            Scalar::N(v) => n(*v),
        }
    }
}

/// One entry of a legacy `Expected` map.
#[derive(Debug, Clone)]
enum Expect {
    /// `{Value: v}`: equal to `v`.
    Equals(Scalar),
    /// `{Exists: true, Value: v}`.
    ExistsWith(Scalar),
    /// `{Exists: false}`.
    Absent,
    /// `{ComparisonOperator: NOT_NULL}`.
    NotNull,
    /// `{ComparisonOperator: NULL}`.
    Null,
    /// `{Exists: true}` without a value: refused.
    ExistsWithoutValue,
}

/// One entry of a legacy `AttributeUpdates` map.
#[derive(Debug, Clone)]
enum LegacyUpdate {
    Put(Scalar),
    Delete,
    Add(i64),
}

/// A request of a sequence.
#[derive(Debug, Clone)]
enum Op {
    Put {
        lease: Lease,
        condition: Option<Condition>,
        return_values: ReturnValue,
        old_on_failure: bool,
    },
    PutLegacy {
        lease: Lease,
        expected: Vec<(&'static str, Expect)>,
    },
    Update {
        key: &'static str,
        condition: Option<Condition>,
        actions: Vec<Action>,
        return_values: ReturnValue,
        old_on_failure: bool,
    },
    UpdateLegacy {
        key: &'static str,
        expected: Vec<(&'static str, Expect)>,
        updates: Vec<(&'static str, LegacyUpdate)>,
        return_values: ReturnValue,
    },
    Get {
        key: &'static str,
        consistent: bool,
    },
    Delete {
        key: &'static str,
        condition: Option<Condition>,
        legacy_expected: Vec<(&'static str, Expect)>,
        return_values: ReturnValue,
    },
    /// A query of the owner index, paged by `limit` to the end.
    QueryOwner {
        owner: &'static str,
        limit: Option<i32>,
        forward: bool,
    },
    /// A scan paged by `limit` to the end; with `delete_page_ends`, the item each page ended on
    /// is deleted before the next page starts from it.
    Scan {
        limit: i32,
        delete_page_ends: bool,
    },
    BatchGet {
        keys: Vec<&'static str>,
    },
    BatchWrite {
        puts: Vec<Lease>,
        deletes: Vec<&'static str>,
    },
    /// The full scan that ends every sequence (never generated in the middle of one).
    Contents,
}

// ---------------------------------------------------------------------------------------------
// Generators

fn pick<T: Clone>(rng: &mut StdRng, from: &[T]) -> T {
    from.choose(rng).expect("non-empty").clone()
}

fn maybe<T>(rng: &mut StdRng, p: f64, value: impl FnOnce(&mut StdRng) -> T) -> Option<T> {
    rng.gen_bool(p).then(|| value(rng))
}

fn gen_lease(rng: &mut StdRng) -> Lease {
    let key = pick(rng, &KEYS);
    let parents = if rng.gen_bool(0.3) {
        KEYS.iter()
            .copied()
            .filter(|k| *k < key)
            .take(rng.gen_range(1..=2))
            .collect()
    } else {
        Vec::new()
    };
    Lease {
        key,
        owner: maybe(rng, 0.7, |r| pick(r, &OWNERS)),
        counter: rng.gen_range(0..=MAX_COUNTER),
        checkpoint: pick(rng, &CHECKPOINTS),
        checkpoint_owner: maybe(rng, 0.2, |r| pick(r, &OWNERS)),
        throughput: maybe(rng, 0.4, |r| pick(r, &THROUGHPUTS)),
        parents,
    }
}

fn gen_simple_condition(rng: &mut StdRng) -> Condition {
    match rng.gen_range(0..7) {
        0 => Condition::Absent,
        1 => Condition::Present,
        2 => Condition::CounterIs(rng.gen_range(0..=MAX_COUNTER)),
        3 => Condition::OwnerIs(pick(rng, &OWNERS)),
        4 => Condition::OwnerAbsent,
        5 => Condition::CheckpointOwnerIs(pick(rng, &OWNERS)),
        _ => Condition::CheckpointOwnerAbsent,
    }
}

/// The fences lease writes use: mostly conjunctions of counter and owner checks.
fn gen_condition(rng: &mut StdRng) -> Condition {
    match rng.gen_range(0..10) {
        0..=3 => gen_simple_condition(rng),
        4..=6 => Condition::And(
            Box::new(Condition::CounterIs(rng.gen_range(0..=MAX_COUNTER))),
            Box::new(gen_simple_condition(rng)),
        ),
        7 | 8 => Condition::And(
            Box::new(gen_simple_condition(rng)),
            Box::new(Condition::And(
                Box::new(gen_simple_condition(rng)),
                Box::new(gen_simple_condition(rng)),
            )),
        ),
        _ => Condition::Or(
            Box::new(gen_simple_condition(rng)),
            Box::new(gen_simple_condition(rng)),
        ),
    }
}

fn gen_action(rng: &mut StdRng) -> Action {
    match rng.gen_range(0..24) {
        0..=3 => Action::SetOwner(pick(rng, &OWNERS)),
        4 | 5 => Action::RemoveOwner,
        6 | 7 => Action::SetCheckpointOwner(pick(rng, &OWNERS)),
        8 | 9 => Action::RemoveCheckpointOwner,
        10 | 11 => Action::SetCheckpoint(pick(rng, &CHECKPOINTS)),
        12 | 13 => Action::IncrementCounter,
        14 => Action::IncrementCounterOrStart,
        15..=17 => Action::AddCounter,
        18 | 19 => Action::AddOwnerSwitches,
        20 | 21 => Action::SetThroughput(pick(rng, &THROUGHPUTS)),
        22 => Action::AddParent(pick(rng, &KEYS)),
        _ => Action::SetKey(pick(rng, &KEYS)),
    }
}

/// The attribute an action writes: two actions on one attribute overlap, which both servers
/// must refuse, so the generator makes that only now and then.
fn action_target(action: &Action) -> &'static str {
    match action {
        Action::SetOwner(_) | Action::RemoveOwner => "leaseOwner",
        Action::SetCheckpointOwner(_) | Action::RemoveCheckpointOwner => "checkpointOwner",
        Action::SetCheckpoint(_) => "checkpoint",
        Action::IncrementCounter | Action::IncrementCounterOrStart | Action::AddCounter => {
            "leaseCounter"
        }
        Action::AddOwnerSwitches => "ownerSwitchesSinceCheckpoint",
        Action::SetThroughput(_) => "throughputKBps",
        Action::AddParent(_) => "parentShardId",
        Action::SetKey(_) => "leaseKey",
    }
}

fn gen_actions(rng: &mut StdRng) -> Vec<Action> {
    let wanted = rng.gen_range(1..=4);
    let allow_overlap = rng.gen_bool(0.05);
    let mut actions: Vec<Action> = Vec::new();
    for _ in 0..wanted * 3 {
        if actions.len() == wanted {
            break;
        }
        let action = gen_action(rng);
        if allow_overlap
            || !actions
                .iter()
                .any(|a| action_target(a) == action_target(&action))
        {
            actions.push(action);
        }
    }
    actions
}

fn gen_scalar_for(rng: &mut StdRng, attribute: &str) -> Scalar {
    match attribute {
        "leaseCounter" | "ownerSwitchesSinceCheckpoint" => {
            Scalar::N(rng.gen_range(0..=MAX_COUNTER))
        }
        "leaseKey" => Scalar::S(pick(rng, &KEYS)),
        "checkpoint" => Scalar::S(pick(rng, &CHECKPOINTS)),
        _ => Scalar::S(pick(rng, &OWNERS)),
    }
}

fn gen_expect(rng: &mut StdRng, attribute: &'static str) -> (&'static str, Expect) {
    let expect = match rng.gen_range(0..20) {
        0..=7 => Expect::Equals(gen_scalar_for(rng, attribute)),
        8..=10 => Expect::ExistsWith(gen_scalar_for(rng, attribute)),
        11..=15 => Expect::Absent,
        16 | 17 => Expect::NotNull,
        18 => Expect::Null,
        _ => Expect::ExistsWithoutValue,
    };
    (attribute, expect)
}

/// The legacy `Expected` maps the Java KCL sends (REFERENCE-KCL3 §1): the counter, the owners,
/// the key's existence.
fn gen_expected(rng: &mut StdRng) -> Vec<(&'static str, Expect)> {
    let mut attributes = ["leaseCounter", "leaseOwner", "checkpointOwner", "leaseKey"];
    attributes.shuffle(rng);
    let count = rng.gen_range(0..=3);
    attributes[..count]
        .iter()
        .map(|a| gen_expect(rng, a))
        .collect()
}

fn gen_legacy_updates(rng: &mut StdRng) -> Vec<(&'static str, LegacyUpdate)> {
    let mut updates = Vec::new();
    if rng.gen_bool(0.6) {
        updates.push((
            "leaseOwner",
            if rng.gen_bool(0.8) {
                LegacyUpdate::Put(Scalar::S(pick(rng, &OWNERS)))
            } else {
                LegacyUpdate::Delete
            },
        ));
    }
    if rng.gen_bool(0.4) {
        updates.push((
            "checkpointOwner",
            if rng.gen_bool(0.4) {
                LegacyUpdate::Put(Scalar::S(pick(rng, &OWNERS)))
            } else {
                LegacyUpdate::Delete
            },
        ));
    }
    if rng.gen_bool(0.7) {
        updates.push((
            "leaseCounter",
            if rng.gen_bool(0.6) {
                LegacyUpdate::Add(1)
            } else {
                LegacyUpdate::Put(Scalar::N(rng.gen_range(0..=MAX_COUNTER)))
            },
        ));
    }
    if rng.gen_bool(0.3) {
        updates.push(("ownerSwitchesSinceCheckpoint", LegacyUpdate::Add(1)));
    }
    if rng.gen_bool(0.2) {
        updates.push((
            "checkpoint",
            LegacyUpdate::Put(Scalar::S(pick(rng, &CHECKPOINTS))),
        ));
    }
    if rng.gen_bool(0.03) {
        // Key attributes cannot be updated, in the legacy form either.
        updates.push(("leaseKey", LegacyUpdate::Put(Scalar::S(pick(rng, &KEYS)))));
    }
    if updates.is_empty() {
        // An UpdateItem without AttributeUpdates is valid (it creates a key-only item), but
        // moto_server answers it with an HTML error page, so that shape is left out.
        updates.push(("leaseCounter", LegacyUpdate::Add(1)));
    }
    updates
}

/// ReturnValues, now and then one the operation does not take (PutItem and DeleteItem accept
/// only NONE and ALL_OLD).
fn gen_return_values(rng: &mut StdRng, update: bool) -> ReturnValue {
    let all = [
        ReturnValue::None,
        ReturnValue::AllOld,
        ReturnValue::UpdatedOld,
        ReturnValue::AllNew,
        ReturnValue::UpdatedNew,
    ];
    if update || rng.gen_bool(0.05) {
        pick(rng, &all)
    } else {
        pick(rng, &all[..2])
    }
}

fn gen_op(rng: &mut StdRng) -> Op {
    match rng.gen_range(0..100) {
        0..=14 => Op::Put {
            lease: gen_lease(rng),
            condition: maybe(rng, 0.7, gen_condition),
            return_values: gen_return_values(rng, false),
            old_on_failure: rng.gen_bool(0.3),
        },
        15..=21 => Op::PutLegacy {
            lease: gen_lease(rng),
            expected: gen_expected(rng),
        },
        22..=44 => Op::Update {
            key: pick(rng, &KEYS),
            condition: maybe(rng, 0.8, gen_condition),
            actions: gen_actions(rng),
            return_values: gen_return_values(rng, true),
            old_on_failure: rng.gen_bool(0.3),
        },
        45..=59 => Op::UpdateLegacy {
            key: pick(rng, &KEYS),
            expected: gen_expected(rng),
            updates: gen_legacy_updates(rng),
            return_values: gen_return_values(rng, true),
        },
        60..=66 => Op::Get {
            key: pick(rng, &KEYS),
            consistent: rng.gen_bool(0.5),
        },
        67..=74 => {
            let legacy = rng.gen_bool(0.3);
            Op::Delete {
                key: pick(rng, &KEYS),
                condition: (!legacy).then(|| maybe(rng, 0.6, gen_condition)).flatten(),
                legacy_expected: if legacy {
                    gen_expected(rng)
                } else {
                    Vec::new()
                },
                return_values: gen_return_values(rng, false),
            }
        }
        75..=83 => Op::QueryOwner {
            owner: pick(rng, &OWNERS),
            limit: maybe(rng, 0.7, |r| r.gen_range(1..=3)),
            forward: rng.gen_bool(0.7),
        },
        84..=89 => Op::Scan {
            limit: rng.gen_range(1..=3),
            delete_page_ends: rng.gen_bool(0.5),
        },
        90..=94 => {
            let count = rng.gen_range(1..=4);
            let mut keys: Vec<&str> = KEYS.choose_multiple(rng, count).copied().collect();
            if rng.gen_bool(0.1) {
                // A key twice in one batch is refused.
                keys.push(keys[0]);
            }
            Op::BatchGet { keys }
        }
        _ => {
            let count = rng.gen_range(1..=4);
            let mut keys: Vec<&str> = KEYS.choose_multiple(rng, count).copied().collect();
            if rng.gen_bool(0.1) {
                keys.push(keys[0]);
            }
            let split = rng.gen_range(0..=keys.len());
            let puts = keys[..split]
                .iter()
                .map(|k| Lease {
                    key: k,
                    ..gen_lease(rng)
                })
                .collect();
            Op::BatchWrite {
                puts,
                deletes: keys[split..].to_vec(),
            }
        }
    }
}

/// The request sequence of `seed`: a few puts first, so that most requests find items.
fn gen_sequence(seed: u64) -> Vec<Op> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ops: Vec<Op> = (0..rng.gen_range(2..=4))
        .map(|_| Op::Put {
            lease: gen_lease(&mut rng),
            condition: None,
            return_values: ReturnValue::None,
            old_on_failure: false,
        })
        .collect();
    let length = rng.gen_range(10..=30);
    ops.extend((0..length).map(|_| gen_op(&mut rng)));
    ops
}

// ---------------------------------------------------------------------------------------------
// Rendering expressions

/// An expression under construction, with its placeholder maps.
#[derive(Default)]
struct Expression {
    names: HashMap<String, String>,
    values: HashMap<String, AV>,
}

impl Expression {
    /// `checkpoint` is a reserved word, so every attribute goes through a name placeholder.
    fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names.insert(placeholder.clone(), attribute.to_owned());
        placeholder
    }

    fn value(&mut self, value: AV) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn condition(&mut self, condition: &Condition) -> String {
        match condition {
            Condition::Absent => format!("attribute_not_exists({})", self.name("leaseKey")),
            Condition::Present => format!("attribute_exists({})", self.name("leaseKey")),
            Condition::CounterIs(c) => {
                format!("{} = {}", self.name("leaseCounter"), self.value(n(*c)))
            }
            Condition::OwnerIs(o) => format!("{} = {}", self.name("leaseOwner"), self.value(s(o))),
            Condition::OwnerAbsent => {
                format!("attribute_not_exists({})", self.name("leaseOwner"))
            }
            Condition::CheckpointOwnerIs(o) => {
                format!("{} = {}", self.name("checkpointOwner"), self.value(s(o)))
            }
            Condition::CheckpointOwnerAbsent => {
                format!("attribute_not_exists({})", self.name("checkpointOwner"))
            }
            Condition::And(a, b) => format!("({}) AND ({})", self.condition(a), self.condition(b)),
            Condition::Or(a, b) => format!("({}) OR ({})", self.condition(a), self.condition(b)),
            Condition::Expected(attribute, expect) => {
                let name = self.name(attribute);
                match expect {
                    Expect::Equals(v) | Expect::ExistsWith(v) => {
                        format!("{name} = {}", self.value(v.value()))
                    }
                    Expect::Absent | Expect::Null => format!("attribute_not_exists({name})"),
                    Expect::NotNull => format!("attribute_exists({name})"),
                    Expect::ExistsWithoutValue => {
                        unreachable!("refused by AWS; never rewritten (see ALLOWANCES)")
                    }
                }
            }
        }
    }

    fn update(&mut self, actions: &[Action]) -> String {
        let (mut set, mut remove, mut add) = (Vec::new(), Vec::new(), Vec::new());
        for action in actions {
            match action {
                Action::SetOwner(o) => set.push(format!(
                    "{} = {}",
                    self.name("leaseOwner"),
                    self.value(s(o))
                )),
                Action::RemoveOwner => remove.push(self.name("leaseOwner")),
                Action::SetCheckpointOwner(o) => set.push(format!(
                    "{} = {}",
                    self.name("checkpointOwner"),
                    self.value(s(o))
                )),
                Action::RemoveCheckpointOwner => remove.push(self.name("checkpointOwner")),
                Action::SetCheckpoint(c) => set.push(format!(
                    "{} = {}",
                    self.name("checkpoint"),
                    self.value(s(c))
                )),
                Action::IncrementCounter => {
                    let counter = self.name("leaseCounter");
                    set.push(format!("{counter} = {counter} + {}", self.value(n(1))));
                }
                Action::IncrementCounterOrStart => {
                    let counter = self.name("leaseCounter");
                    set.push(format!(
                        "{counter} = if_not_exists({counter}, {}) + {}",
                        self.value(n(0)),
                        self.value(n(1))
                    ));
                }
                Action::AddCounter => add.push(format!(
                    "{} {}",
                    self.name("leaseCounter"),
                    self.value(n(1))
                )),
                Action::AddOwnerSwitches => add.push(format!(
                    "{} {}",
                    self.name("ownerSwitchesSinceCheckpoint"),
                    self.value(n(1))
                )),
                Action::SetThroughput(t) => set.push(format!(
                    "{} = {}",
                    self.name("throughputKBps"),
                    self.value(AV::N((*t).to_owned()))
                )),
                Action::AddParent(p) => add.push(format!(
                    "{} {}",
                    self.name("parentShardId"),
                    self.value(AV::Ss(vec![(*p).to_owned()]))
                )),
                Action::SetKey(k) => {
                    set.push(format!("{} = {}", self.name("leaseKey"), self.value(s(k))))
                }
            }
        }
        let mut clauses = Vec::new();
        for (keyword, parts) in [("SET", set), ("REMOVE", remove), ("ADD", add)] {
            if !parts.is_empty() {
                clauses.push(format!("{keyword} {}", parts.join(", ")));
            }
        }
        clauses.join(" ")
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, AV>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

fn legacy_expected(expected: &[(&str, Expect)]) -> Option<HashMap<String, ExpectedAttributeValue>> {
    if expected.is_empty() {
        return None;
    }
    let map = expected
        .iter()
        .map(|(attribute, expect)| {
            let builder = ExpectedAttributeValue::builder();
            let value = match expect {
                Expect::Equals(v) => builder.value(v.value()),
                Expect::ExistsWith(v) => builder.exists(true).value(v.value()),
                Expect::Absent => builder.exists(false),
                Expect::NotNull => builder.comparison_operator(ComparisonOperator::NotNull),
                Expect::Null => builder.comparison_operator(ComparisonOperator::Null),
                Expect::ExistsWithoutValue => builder.exists(true),
            };
            ((*attribute).to_owned(), value.build())
        })
        .collect();
    Some(map)
}

fn legacy_updates(
    updates: &[(&str, LegacyUpdate)],
) -> Option<HashMap<String, AttributeValueUpdate>> {
    if updates.is_empty() {
        return None;
    }
    let map = updates
        .iter()
        .map(|(attribute, update)| {
            let builder = AttributeValueUpdate::builder();
            let value = match update {
                LegacyUpdate::Put(v) => builder.action(AttributeAction::Put).value(v.value()),
                LegacyUpdate::Delete => builder.action(AttributeAction::Delete),
                LegacyUpdate::Add(by) => builder.action(AttributeAction::Add).value(n(*by)),
            };
            ((*attribute).to_owned(), value.build())
        })
        .collect();
    Some(map)
}

// ---------------------------------------------------------------------------------------------
// Outcomes: what a server answered, in a form two servers' answers compare in

/// An attribute value with sets in a canonical order (DynamoDB does not keep set order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    S(String),
    N(String),
    B(Vec<u8>),
    Ss(BTreeSet<String>),
    Ns(BTreeSet<String>),
    Bs(BTreeSet<Vec<u8>>),
    Bool(bool),
    Null,
    L(Vec<Value>),
    M(BTreeMap<String, Value>),
    Unknown(String),
}

type Item = BTreeMap<String, Value>;

fn value(av: &AV) -> Value {
    match av {
        AV::S(v) => Value::S(v.clone()),
        AV::N(v) => Value::N(v.clone()),
        AV::B(v) => Value::B(v.as_ref().to_vec()),
        AV::Ss(v) => Value::Ss(v.iter().cloned().collect()),
        AV::Ns(v) => Value::Ns(v.iter().cloned().collect()),
        AV::Bs(v) => Value::Bs(v.iter().map(|b| b.as_ref().to_vec()).collect()),
        AV::Bool(v) => Value::Bool(*v),
        AV::Null(_) => Value::Null,
        AV::L(v) => Value::L(v.iter().map(value).collect()),
        AV::M(v) => Value::M(item(v)),
        other => Value::Unknown(format!("{other:?}")),
    }
}

/// The attributes a write returned. An empty map counts as none: moto sends `{}` where the
/// emulator leaves `Attributes` out, and the two say the same to every SDK user.
fn returned(attributes: Option<&HashMap<String, AV>>) -> Option<Item> {
    attributes.filter(|a| !a.is_empty()).map(item)
}

fn item(attributes: &HashMap<String, AV>) -> Item {
    attributes
        .iter()
        .map(|(k, v)| (k.clone(), value(v)))
        .collect()
}

/// One page of a query.
#[derive(Debug, Clone, PartialEq)]
struct Page {
    items: Vec<Item>,
    count: i32,
    scanned_count: i32,
    last_evaluated_key: Option<Item>,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// An error response: its code, and the item a failed condition handed back.
    Failed { code: String, item: Option<Item> },
    /// The attributes a write returned, or the item a GetItem read.
    Attributes(Option<Item>),
    /// Every page of a query, in order.
    Query(Vec<Page>),
    /// A scan: which items land on which page is the server's own order, so the pages compare
    /// by size and the items as a set.
    Scan {
        page_counts: Vec<i32>,
        scanned_counts: Vec<i32>,
        /// Per page: whether it had a LastEvaluatedKey, and whether that key is the key of the
        /// page's last item.
        page_ends: Vec<(bool, bool)>,
        items: Vec<Item>,
    },
    /// BatchGetItem's items (in no particular order, so sorted) and unprocessed key count.
    BatchGet {
        items: Vec<Item>,
        unprocessed: usize,
    },
    /// BatchWriteItem's unprocessed request count.
    BatchWrite { unprocessed: usize },
    /// Every item of the table, sorted.
    Contents(Vec<Item>),
}

fn failed<E: ProvideErrorMetadata + std::fmt::Debug>(err: &E, item: Option<Item>) -> Outcome {
    Outcome::Failed {
        code: err
            .code()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("no error code: {err:?}")),
        item,
    }
}

fn key_of(lease_key: &str) -> HashMap<String, AV> {
    HashMap::from([("leaseKey".to_owned(), s(lease_key))])
}

// ---------------------------------------------------------------------------------------------
// The runner: one per server, the same for both

/// A table on one server, and the number of requests sent to it.
struct Runner {
    client: Client,
    table: String,
    requests: usize,
}

impl Runner {
    async fn create(client: Client) -> Runner {
        let table = unique_name("diff");
        let key = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .unwrap()
        };
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap()
        };
        client
            .create_table()
            .table_name(&table)
            .key_schema(key("leaseKey", KeyType::Hash))
            .attribute_definitions(attr("leaseKey"))
            .attribute_definitions(attr("leaseOwner"))
            .billing_mode(BillingMode::PayPerRequest)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(OWNER_INDEX)
                    .key_schema(key("leaseOwner", KeyType::Hash))
                    .key_schema(key("leaseKey", KeyType::Range))
                    .projection(
                        Projection::builder()
                            .projection_type(ProjectionType::KeysOnly)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("creating the table");
        Runner {
            client,
            table,
            requests: 0,
        }
    }

    async fn drop_table(&self) {
        let _ = self
            .client
            .delete_table()
            .table_name(&self.table)
            .send()
            .await;
    }

    async fn run(&mut self, op: &Op) -> Outcome {
        let client = self.client.clone();
        let table = self.table.clone();
        self.requests += 1;
        match op {
            Op::Put {
                lease,
                condition,
                return_values,
                old_on_failure,
            } => {
                let mut expr = Expression::default();
                let condition = condition.as_ref().map(|c| expr.condition(c));
                let result = client
                    .put_item()
                    .table_name(table)
                    .set_item(Some(lease.item()))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(expr.names())
                    .set_expression_attribute_values(expr.values())
                    .return_values(return_values.clone())
                    .set_return_values_on_condition_check_failure(
                        old_on_failure.then_some(ReturnValuesOnConditionCheckFailure::AllOld),
                    )
                    .send()
                    .await;
                match result {
                    Ok(out) => Outcome::Attributes(returned(out.attributes())),
                    Err(err) => {
                        let err = err.into_service_error();
                        let old = match &err {
                            aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(e) => e.item().map(item),
                            _ => None,
                        };
                        failed(&err, old)
                    }
                }
            }
            Op::PutLegacy { lease, expected } => {
                let result = client
                    .put_item()
                    .table_name(table)
                    .set_item(Some(lease.item()))
                    .set_expected(legacy_expected(expected))
                    .send()
                    .await;
                match result {
                    Ok(out) => Outcome::Attributes(returned(out.attributes())),
                    Err(err) => failed(&err.into_service_error(), None),
                }
            }
            Op::Update {
                key,
                condition,
                actions,
                return_values,
                old_on_failure,
            } => {
                let mut expr = Expression::default();
                let condition = condition.as_ref().map(|c| expr.condition(c));
                let update = expr.update(actions);
                let result = client
                    .update_item()
                    .table_name(table)
                    .set_key(Some(key_of(key)))
                    .update_expression(update)
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(expr.names())
                    .set_expression_attribute_values(expr.values())
                    .return_values(return_values.clone())
                    .set_return_values_on_condition_check_failure(
                        old_on_failure.then_some(ReturnValuesOnConditionCheckFailure::AllOld),
                    )
                    .send()
                    .await;
                match result {
                    Ok(out) => Outcome::Attributes(returned(out.attributes())),
                    Err(err) => {
                        let err = err.into_service_error();
                        let old = match &err {
                            aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(e) => e.item().map(item),
                            _ => None,
                        };
                        failed(&err, old)
                    }
                }
            }
            Op::UpdateLegacy {
                key,
                expected,
                updates,
                return_values,
            } => {
                let result = client
                    .update_item()
                    .table_name(table)
                    .set_key(Some(key_of(key)))
                    .set_expected(legacy_expected(expected))
                    .set_attribute_updates(legacy_updates(updates))
                    .return_values(return_values.clone())
                    .send()
                    .await;
                match result {
                    Ok(out) => Outcome::Attributes(returned(out.attributes())),
                    Err(err) => failed(&err.into_service_error(), None),
                }
            }
            Op::Get { key, consistent } => {
                let result = client
                    .get_item()
                    .table_name(table)
                    .set_key(Some(key_of(key)))
                    .consistent_read(*consistent)
                    .send()
                    .await;
                match result {
                    Ok(out) => Outcome::Attributes(out.item().map(item)),
                    Err(err) => failed(&err.into_service_error(), None),
                }
            }
            Op::Delete {
                key,
                condition,
                legacy_expected: expected,
                return_values,
            } => {
                let mut expr = Expression::default();
                let condition = condition.as_ref().map(|c| expr.condition(c));
                let result = client
                    .delete_item()
                    .table_name(table)
                    .set_key(Some(key_of(key)))
                    .set_condition_expression(condition)
                    .set_expression_attribute_names(expr.names())
                    .set_expression_attribute_values(expr.values())
                    .set_expected(legacy_expected(expected))
                    .return_values(return_values.clone())
                    .send()
                    .await;
                match result {
                    Ok(out) => Outcome::Attributes(returned(out.attributes())),
                    Err(err) => failed(&err.into_service_error(), None),
                }
            }
            Op::QueryOwner {
                owner,
                limit,
                forward,
            } => {
                self.requests -= 1;
                let mut pages = Vec::new();
                let mut start = None;
                loop {
                    self.requests += 1;
                    let result = client
                        .query()
                        .table_name(&table)
                        .index_name(OWNER_INDEX)
                        .key_condition_expression("leaseOwner = :owner")
                        .expression_attribute_values(":owner", s(owner))
                        .set_limit(*limit)
                        .scan_index_forward(*forward)
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await;
                    let out = match result {
                        Ok(out) => out,
                        Err(err) => return failed(&err.into_service_error(), None),
                    };
                    pages.push(Page {
                        items: out.items().iter().map(item).collect(),
                        count: out.count(),
                        scanned_count: out.scanned_count(),
                        last_evaluated_key: out.last_evaluated_key().map(item),
                    });
                    match out.last_evaluated_key() {
                        Some(key) if pages.len() < 20 => start = Some(key.clone()),
                        _ => break,
                    }
                }
                Outcome::Query(pages)
            }
            Op::Scan {
                limit,
                delete_page_ends,
            } => {
                self.requests -= 1;
                let (mut page_counts, mut scanned_counts, mut page_ends, mut items) =
                    (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                let mut start: Option<HashMap<String, AV>> = None;
                loop {
                    self.requests += 1;
                    let result = client
                        .scan()
                        .table_name(&table)
                        .limit(*limit)
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await;
                    let out = match result {
                        Ok(out) => out,
                        Err(err) => return failed(&err.into_service_error(), None),
                    };
                    page_counts.push(out.count());
                    scanned_counts.push(out.scanned_count());
                    let last_item_key = out
                        .items()
                        .last()
                        .and_then(|i| i.get("leaseKey"))
                        .map(|k| key_of(k.as_s().expect("string keys")));
                    let lek = out.last_evaluated_key();
                    page_ends.push((
                        lek.is_some(),
                        lek.is_some() && lek == last_item_key.as_ref(),
                    ));
                    items.extend(out.items().iter().map(item));
                    let Some(lek) = lek else { break };
                    if page_counts.len() >= 20 {
                        break;
                    }
                    if *delete_page_ends {
                        self.requests += 1;
                        client
                            .delete_item()
                            .table_name(&table)
                            .set_key(Some(lek.clone()))
                            .send()
                            .await
                            .expect("deleting the item a page ended on");
                    }
                    start = Some(lek.clone());
                }
                items.sort();
                Outcome::Scan {
                    page_counts,
                    scanned_counts,
                    page_ends,
                    items,
                }
            }
            Op::BatchGet { keys } => {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(keys.iter().map(|k| key_of(k)).collect()))
                    .consistent_read(true)
                    .build()
                    .unwrap();
                let result = client
                    .batch_get_item()
                    .request_items(&table, request)
                    .send()
                    .await;
                match result {
                    Ok(out) => {
                        let mut items: Vec<Item> = out
                            .responses()
                            .and_then(|r| r.get(&table))
                            .map(|items| items.iter().map(item).collect())
                            .unwrap_or_default();
                        items.sort();
                        let unprocessed = out
                            .unprocessed_keys()
                            .and_then(|u| u.get(&table))
                            .map_or(0, |k| k.keys().len());
                        Outcome::BatchGet { items, unprocessed }
                    }
                    Err(err) => failed(&err.into_service_error(), None),
                }
            }
            Op::BatchWrite { puts, deletes } => {
                let mut requests: Vec<WriteRequest> = puts
                    .iter()
                    .map(|lease| {
                        WriteRequest::builder()
                            .put_request(
                                PutRequest::builder()
                                    .set_item(Some(lease.item()))
                                    .build()
                                    .unwrap(),
                            )
                            .build()
                    })
                    .collect();
                requests.extend(deletes.iter().map(|k| {
                    WriteRequest::builder()
                        .delete_request(
                            DeleteRequest::builder()
                                .set_key(Some(key_of(k)))
                                .build()
                                .unwrap(),
                        )
                        .build()
                }));
                let result = client
                    .batch_write_item()
                    .request_items(&table, requests)
                    .send()
                    .await;
                match result {
                    Ok(out) => Outcome::BatchWrite {
                        unprocessed: out
                            .unprocessed_items()
                            .and_then(|u| u.get(&table))
                            .map_or(0, Vec::len),
                    },
                    Err(err) => failed(&err.into_service_error(), None),
                }
            }
            Op::Contents => {
                self.requests -= 1;
                Outcome::Contents(self.contents().await)
            }
        }
    }

    /// Every item of the table, sorted by key.
    async fn contents(&mut self) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            self.requests += 1;
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .expect("scanning the whole table");
            items.extend(out.items().iter().map(item));
            match out.last_evaluated_key() {
                Some(key) => start = Some(key.clone()),
                None => break,
            }
        }
        items.sort();
        items
    }
}

// ---------------------------------------------------------------------------------------------
// The comparer

/// A known difference where moto departs from AWS's documented behaviour, and what the
/// comparison does about requests of that shape.
struct Allowance {
    shape: &'static str,
    /// What AWS documents, and so why the emulator's answer stands.
    reason: &'static str,
    applies: fn(&Op) -> bool,
    treatment: Treatment,
}

enum Treatment {
    /// moto is not asked (it would accept, or refuse differently): the emulator must refuse
    /// with this error code. A refused request changes nothing, so the tables stay alike.
    EmulatorRefuses(&'static str),
    /// moto is sent this documented equivalent of the request instead.
    MotoGets(fn(&Op) -> Op),
    /// Both answers are compared after this rewrites the field moto gets wrong.
    Mask(fn(&mut Outcome, &mut Outcome)),
}

/// The allow-list (see [`Allowance`]); the first that applies to a request is used.
const ALLOWANCES: &[Allowance] = &[
    Allowance {
        shape: "legacy Expected entry with Exists: true and no Value",
        reason: "ExpectedAttributeValue.Exists (API reference): DynamoDB returns a \
                 ValidationException if Exists is true but there is no Value to check; moto \
                 evaluates it as an existence check",
        applies: |op| {
            legacy_expected_of(op)
                .iter()
                .any(|(_, e)| matches!(e, Expect::ExistsWithoutValue))
        },
        treatment: Treatment::EmulatorRefuses("ValidationException"),
    },
    Allowance {
        shape: "BatchWriteItem with two requests for one item",
        reason: "BatchWriteItem (API reference): a ValidationException when the request \
                 performs multiple operations on the same item, e.g. a put and a delete of \
                 one item; moto refuses two deletes but applies a put and a delete",
        applies: |op| match op {
            Op::BatchWrite { puts, deletes } => {
                let keys: Vec<&str> = puts
                    .iter()
                    .map(|l| l.key)
                    .chain(deletes.iter().copied())
                    .collect();
                keys.iter().enumerate().any(|(i, k)| keys[..i].contains(k))
            }
            _ => false,
        },
        treatment: Treatment::EmulatorRefuses("ValidationException"),
    },
    Allowance {
        shape: "UpdateItem acting on the key attribute",
        reason: "UpdateItem (API reference, AttributeUpdates and UpdateExpression): primary \
                 key attributes cannot be updated (delete the item and put a new one), a \
                 ValidationException whatever the item holds, so before any condition; moto \
                 evaluates the condition first, and applies the legacy form, rewriting the key",
        applies: |op| match op {
            Op::UpdateLegacy { updates, .. } => updates
                .iter()
                .any(|(attribute, _)| *attribute == "leaseKey"),
            Op::Update { actions, .. } => actions.iter().any(|a| matches!(a, Action::SetKey(_))),
            _ => false,
        },
        treatment: Treatment::EmulatorRefuses("ValidationException"),
    },
    Allowance {
        shape: "legacy Expected entry with Exists: true and a Value",
        reason: "ExpectedAttributeValue.Exists (API reference): with Exists true DynamoDB \
                 compares the attribute with Value, and a Value alone means the same ('you \
                 don't have to set Exists to true, because it is implied'); moto checks only \
                 that the attribute exists, so it is sent the Value alone",
        applies: |op| {
            matches!(op, Op::PutLegacy { .. } | Op::UpdateLegacy { .. })
                && legacy_expected_of(op)
                    .iter()
                    .any(|(_, e)| matches!(e, Expect::ExistsWith(_)))
        },
        treatment: Treatment::MotoGets(|op| {
            let implied = |expected: &[(&'static str, Expect)]| {
                expected
                    .iter()
                    .map(|(attribute, expect)| match expect {
                        Expect::ExistsWith(v) => (*attribute, Expect::Equals(v.clone())),
                        other => (*attribute, other.clone()),
                    })
                    .collect()
            };
            let mut op = op.clone();
            match &mut op {
                Op::PutLegacy { expected, .. } | Op::UpdateLegacy { expected, .. } => {
                    *expected = implied(expected)
                }
                _ => {}
            }
            op
        }),
    },
    Allowance {
        shape: "update expression acting twice on one attribute",
        reason: "Update expressions (developer guide): an attribute may appear in one action \
                 only; overlapping document paths are a ValidationException, found before any \
                 condition is evaluated. moto evaluates the condition first \
                 (ConditionalCheckFailedException) or applies both actions",
        applies: |op| match op {
            Op::Update { actions, .. } => actions.iter().enumerate().any(|(i, a)| {
                actions[..i]
                    .iter()
                    .any(|b| action_target(a) == action_target(b))
            }),
            _ => false,
        },
        treatment: Treatment::EmulatorRefuses("ValidationException"),
    },
    Allowance {
        shape: "DeleteItem with a legacy Expected map",
        reason: "DeleteItem (API reference) honours Expected as PutItem and UpdateItem do, the \
                 legacy equivalent of ConditionExpression (developer guide, legacy conditional \
                 parameters); moto ignores Expected on DeleteItem, so it is sent the \
                 equivalent ConditionExpression",
        applies: |op| matches!(op, Op::Delete { legacy_expected, .. } if !legacy_expected.is_empty()),
        treatment: Treatment::MotoGets(|op| match op {
            Op::Delete {
                key,
                legacy_expected,
                return_values,
                ..
            } => Op::Delete {
                key,
                condition: legacy_expected
                    .iter()
                    .map(|(attribute, expect)| Condition::Expected(attribute, expect.clone()))
                    .reduce(|a, b| Condition::And(Box::new(a), Box::new(b))),
                legacy_expected: Vec::new(),
                return_values: return_values.clone(),
            },
            other => other.clone(),
        }),
    },
    Allowance {
        shape: "UPDATED_OLD / UPDATED_NEW attribute selection",
        reason: "UpdateItem ReturnValues (API reference): UPDATED_OLD and UPDATED_NEW return \
                 'only the updated attributes', those the update acts on, which never include \
                 the key; moto leaves out attributes set to the value they had and adds the \
                 key of an item the update created. Compared: the attributes moto returns, \
                 less the key",
        applies: |op| {
            matches!(
                op,
                Op::Update {
                    return_values: ReturnValue::UpdatedOld | ReturnValue::UpdatedNew,
                    ..
                } | Op::UpdateLegacy {
                    return_values: ReturnValue::UpdatedOld | ReturnValue::UpdatedNew,
                    ..
                }
            )
        },
        treatment: Treatment::Mask(|emulator, moto| {
            if let (Outcome::Attributes(ours), Outcome::Attributes(theirs)) = (emulator, moto) {
                if let Some(theirs) = theirs.as_mut() {
                    theirs.remove("leaseKey");
                }
                if let Some(ours) = ours.as_mut() {
                    ours.retain(|name, _| theirs.as_ref().is_some_and(|t| t.contains_key(name)));
                }
                for side in [ours, theirs] {
                    if side.as_ref().is_some_and(BTreeMap::is_empty) {
                        *side = None;
                    }
                }
            }
        }),
    },
    Allowance {
        shape: "numbers with trailing zeros (throughputKBps 12.0)",
        reason: "Number data type (developer guide, supported data types): leading and \
                 trailing zeroes are trimmed; moto returns the number as it was written",
        applies: |_| true,
        treatment: Treatment::Mask(|emulator, moto| {
            canonical_numbers(emulator);
            canonical_numbers(moto);
        }),
    },
];

fn legacy_expected_of(op: &Op) -> &[(&'static str, Expect)] {
    match op {
        Op::PutLegacy { expected, .. } | Op::UpdateLegacy { expected, .. } => expected,
        Op::Delete {
            legacy_expected, ..
        } => legacy_expected,
        _ => &[],
    }
}

/// Rewrites every number in `outcome` without leading or trailing zeros.
fn canonical_numbers(outcome: &mut Outcome) {
    fn number(n: &str) -> String {
        let (sign, digits) = n.strip_prefix('-').map_or(("", n), |d| ("-", d));
        let digits = digits.trim_start_matches('0');
        let digits = if digits.contains('.') {
            digits.trim_end_matches('0').trim_end_matches('.')
        } else {
            digits
        };
        match digits {
            "" => "0".to_owned(),
            d if d.starts_with('.') => format!("{sign}0{d}"),
            d => format!("{sign}{d}"),
        }
    }
    fn in_value(value: &mut Value) {
        match value {
            Value::N(n) => *n = number(n),
            Value::Ns(set) => *set = set.iter().map(|n| number(n)).collect(),
            Value::L(list) => list.iter_mut().for_each(in_value),
            Value::M(map) => in_item(map),
            _ => {}
        }
    }
    fn in_item(item: &mut Item) {
        item.values_mut().for_each(in_value);
    }
    match outcome {
        Outcome::Failed { item, .. } | Outcome::Attributes(item) => {
            item.iter_mut().for_each(in_item)
        }
        Outcome::Query(pages) => pages.iter_mut().for_each(|p| {
            p.items.iter_mut().for_each(in_item);
            p.last_evaluated_key.iter_mut().for_each(in_item);
        }),
        Outcome::Scan { items, .. }
        | Outcome::BatchGet { items, .. }
        | Outcome::Contents(items) => {
            items.iter_mut().for_each(in_item);
            items.sort();
        }
        Outcome::BatchWrite { .. } => {}
    }
}

/// Runs `op` on both servers under every allowance that fits it, and compares the answers;
/// returns the allowances that made a difference.
async fn run_and_compare(
    op: &Op,
    emulator: &mut Runner,
    moto: &mut Runner,
) -> Result<Vec<&'static str>, String> {
    let fitting: Vec<&Allowance> = ALLOWANCES.iter().filter(|a| (a.applies)(op)).collect();
    let from_emulator = emulator.run(op).await;
    for allowance in &fitting {
        if let Treatment::EmulatorRefuses(code) = allowance.treatment {
            return match &from_emulator {
                Outcome::Failed { code: got, .. } if got == code => Ok(vec![allowance.shape]),
                other => Err(format!(
                    "  emulator: {other:?}\n  expected: {code} (moto not asked: {})",
                    allowance.shape
                )),
            };
        }
    }
    let mut used = Vec::new();
    let mut moto_op = op.clone();
    for allowance in &fitting {
        if let Treatment::MotoGets(rewrite) = allowance.treatment {
            moto_op = rewrite(&moto_op);
            used.push(allowance.shape);
        }
    }
    let (mut ours, mut theirs) = (from_emulator, moto.run(&moto_op).await);
    for allowance in &fitting {
        if let Treatment::Mask(mask) = allowance.treatment {
            if ours != theirs {
                mask(&mut ours, &mut theirs);
                used.push(allowance.shape);
            }
        }
    }
    if ours == theirs {
        Ok(used)
    } else {
        Err(format!("  emulator: {ours:?}\n  moto:     {theirs:?}"))
    }
}

/// What one seed's run came to.
struct SeedRun {
    requests: usize,
    allowances: Vec<&'static str>,
    mismatch: Option<String>,
}

async fn run_seed(seed: u64, emulator: &Client, moto: &Client) -> SeedRun {
    let ops = gen_sequence(seed);
    let mut on_emulator = Runner::create(emulator.clone()).await;
    let mut on_moto = Runner::create(moto.clone()).await;
    let mut allowances = Vec::new();
    let mut mismatch = None;
    for (index, op) in ops.iter().chain([&Op::Contents]).enumerate() {
        match run_and_compare(op, &mut on_emulator, &mut on_moto).await {
            Ok(used) => allowances.extend(used),
            Err(difference) => {
                mismatch = Some(format!(
                    "request #{index} ({op:?}) answered differently:\n{difference}"
                ));
                break;
            }
        }
    }
    on_emulator.drop_table().await;
    on_moto.drop_table().await;
    let mismatch = mismatch.map(|what| {
        let mut report = format!("seed {seed} (replay: KCL_DIFF_SEED={seed}): {what}\nsequence:\n");
        for (index, op) in ops.iter().enumerate() {
            let _ = writeln!(report, "  #{index}: {op:?}");
        }
        report
    });
    SeedRun {
        requests: on_emulator.requests + on_moto.requests,
        allowances,
        mismatch,
    }
}

fn seeds() -> Vec<u64> {
    let parse = |name: &str| {
        std::env::var(name).ok().map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{name}={v}: not a number"))
        })
    };
    if let Some(seed) = parse("KCL_DIFF_SEED") {
        vec![seed]
    } else {
        (0..parse("KCL_DIFF_SEEDS").unwrap_or(CI_SEEDS)).collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_emulator_answers_lease_table_requests_as_moto_does() {
    let moto = tokio::task::spawn_blocking(MotoServer::start)
        .await
        .unwrap();
    let emulator = start_emulator().await;
    let (on_emulator, on_moto) = (
        dynamodb_client(&emulator.endpoint_url()),
        dynamodb_client(moto.endpoint()),
    );
    let seeds = seeds();
    let (mut requests, mut mismatches) = (0, Vec::new());
    let mut allowances: BTreeMap<&str, usize> = BTreeMap::new();
    for &seed in &seeds {
        let run = run_seed(seed, &on_emulator, &on_moto).await;
        requests += run.requests;
        for shape in run.allowances {
            *allowances.entry(shape).or_default() += 1;
        }
        if let Some(report) = run.mismatch {
            println!("{report}");
            mismatches.push(seed);
        }
    }
    println!(
        "differential: {} seeds, {requests} requests, {} mismatching seeds {mismatches:?}, \
         allowances used {allowances:?}",
        seeds.len(),
        mismatches.len()
    );
    for allowance in ALLOWANCES {
        println!("allowed: {}: {}", allowance.shape, allowance.reason);
    }
    assert!(
        mismatches.is_empty(),
        "the emulator and moto answered differently for seeds {mismatches:?} (reports above)"
    );
}

fn s(v: &str) -> AV {
    AV::S(v.to_owned())
}

fn n(v: i64) -> AV {
    AV::N(v.to_string())
}
