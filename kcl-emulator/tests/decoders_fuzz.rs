//! The fuzz entry points on stable, without libFuzzer: the committed seed corpora (`fuzz/corpus`)
//! must be accepted, then a fixed number of inputs per target, generated from the request
//! shapes and mutated from the seeds with a seeded random generator, must not panic. The long
//! runs are `cargo +nightly fuzz run <target>` (see README, "Fuzzing").

use std::path::PathBuf;

use base64::Engine as _;
use ciborium::Value as Cbor;
use kcl_emulator::fuzz_entry;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value as Json};

/// Inputs per target: a few seconds in a debug build.
const INPUTS: usize = 20_000;
/// Fewer event-stream inputs: each encodes and checksums kilobytes, slow without optimization.
const EVENT_STREAM_INPUTS: usize = 5_000;

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no seeds in {}", dir.display());
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Byte-level mutations, as libFuzzer makes them: flips, inserts, deletes, truncation, splices
/// of interesting bytes.
fn mutate_bytes(rng: &mut StdRng, bytes: &mut Vec<u8>) {
    const INTERESTING: &[u8] = b"\x00\xff\x7f\x80{}[]\",:\\ 0123456789-.eE#()=<>\x1b\xc3\xa9\xf0";
    for _ in 0..rng.gen_range(1..4) {
        let at = rng.gen_range(0..=bytes.len());
        match rng.gen_range(0..5) {
            0 if at < bytes.len() => bytes[at] ^= 1 << rng.gen_range(0..8),
            1 => bytes.insert(at, *INTERESTING.choose(rng).unwrap()),
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            3 => bytes.truncate(at),
            _ if at < bytes.len() => bytes[at] = *INTERESTING.choose(rng).unwrap(),
            _ => bytes.push(rng.gen()),
        }
    }
}

fn random_text(rng: &mut StdRng) -> String {
    const WORDS: &[&str] = &[
        "orders",
        "shardId-000000000000",
        "shardId-000000000001",
        "arn:aws:kinesis:us-east-1:000000000000:stream/orders",
        "arn:aws:kinesis:us-east-1:000000000000:stream/orders/consumer/app:1",
        "LATEST",
        "TRIM_HORIZON",
        "AT_TIMESTAMP",
        "AFTER_SEQUENCE_NUMBER",
        "49590338271490256608559692538361571095921575989136588898",
        "340282366920938463463374607431768211455",
        "340282366920938463463374607431768211456",
        "-1",
        "",
        "é\u{0}\u{1f600}",
        "aGVsbG8=",
        "not base64!",
    ];
    if rng.gen_bool(0.7) {
        (*WORDS.choose(rng).unwrap()).to_owned()
    } else {
        (0..rng.gen_range(0..40))
            .map(|_| rng.gen::<char>())
            .collect()
    }
}

const KINESIS_MEMBERS: &[&str] = &[
    "StreamName",
    "StreamARN",
    "ShardCount",
    "ShardId",
    "ShardIteratorType",
    "StartingSequenceNumber",
    "Timestamp",
    "ShardIterator",
    "Limit",
    "Records",
    "Data",
    "PartitionKey",
    "ExplicitHashKey",
    "SequenceNumberForOrdering",
    "NextToken",
    "MaxResults",
    "ShardFilter",
    "Type",
    "StreamModeDetails",
    "StreamMode",
    "Tags",
    "TagKeys",
    "ConsumerARN",
    "ConsumerName",
    "StartingPosition",
    "SequenceNumber",
    "TargetShardCount",
    "ScalingType",
    "ShardToSplit",
    "NewStartingHashKey",
    "RetentionPeriodHours",
    "ShardLevelMetrics",
    "EncryptionType",
    "KeyId",
];

/// A JSON value of any shape, with Kinesis member names as keys.
fn random_json(rng: &mut StdRng, depth: u32) -> Json {
    match rng.gen_range(0..if depth == 0 { 5 } else { 8 }) {
        0 => Json::Null,
        1 => Json::Bool(rng.gen()),
        2 => json!(*[0i64, 1, -1, 10_000, i64::MAX, i64::MIN, rng.gen()]
            .choose(rng)
            .unwrap()),
        3 => json!(*[0.5f64, -1e300, 1.7e9, f64::MIN_POSITIVE, rng.gen()]
            .choose(rng)
            .unwrap()),
        4 => Json::String(random_text(rng)),
        5 => Json::Array(
            (0..rng.gen_range(0..5))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => Json::Object(
            (0..rng.gen_range(0..5))
                .map(|_| {
                    (
                        (*KINESIS_MEMBERS.choose(rng).unwrap()).to_owned(),
                        random_json(rng, depth - 1),
                    )
                })
                .collect(),
        ),
    }
}

/// Replaces, removes or adds one member somewhere in `value`.
fn mutate_json(
    rng: &mut StdRng,
    value: &mut Json,
    replacement: &mut impl FnMut(&mut StdRng) -> Json,
) {
    match value {
        Json::Object(map) if !map.is_empty() && rng.gen_bool(0.6) => {
            let key = map.keys().nth(rng.gen_range(0..map.len())).unwrap().clone();
            match rng.gen_range(0..4) {
                0 => {
                    map.remove(&key);
                }
                1 => *map.get_mut(&key).unwrap() = replacement(rng),
                _ => mutate_json(rng, map.get_mut(&key).unwrap(), replacement),
            }
        }
        Json::Array(items) if !items.is_empty() && rng.gen_bool(0.6) => {
            let at = rng.gen_range(0..items.len());
            if rng.gen_bool(0.3) {
                items.push(items[at].clone());
            } else {
                mutate_json(rng, &mut items[at], replacement);
            }
        }
        Json::Object(map) => {
            let key = (*KINESIS_MEMBERS.choose(rng).unwrap()).to_owned();
            map.insert(key, replacement(rng));
        }
        _ => *value = replacement(rng),
    }
}

/// The CBOR a client would send for `value`: blobs as byte strings, timestamps as tag 1
/// milliseconds, and now and then the odd shapes only CBOR can carry.
fn to_cbor(rng: &mut StdRng, value: &Json, member: Option<&str>) -> Cbor {
    match value {
        Json::String(s) if member == Some("Data") => Cbor::Bytes(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .unwrap_or_else(|_| s.as_bytes().to_vec()),
        ),
        Json::Number(n) if matches!(member, Some("Timestamp")) => {
            let millis = (n.as_f64().unwrap_or(0.0) * 1000.0) as i64;
            Cbor::Tag(1, Box::new(Cbor::Integer(millis.into())))
        }
        _ if rng.gen_bool(0.02) => match rng.gen_range(0..5) {
            0 => Cbor::Tag(rng.gen_range(0..4), Box::new(Cbor::Float(rng.gen()))),
            1 => Cbor::Integer(u64::MAX.into()),
            2 => Cbor::Integer((-1 - i64::MAX as i128).try_into().unwrap()),
            3 => Cbor::Map(vec![(Cbor::Integer(1.into()), Cbor::Null)]),
            _ => Cbor::Tag(1, Box::new(Cbor::Text("x".into()))),
        },
        Json::Null => Cbor::Null,
        Json::Bool(b) => Cbor::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Cbor::Integer(i.into()),
            None => Cbor::Float(n.as_f64().unwrap_or(0.0)),
        },
        Json::String(s) => Cbor::Text(s.clone()),
        Json::Array(items) => Cbor::Array(items.iter().map(|v| to_cbor(rng, v, member)).collect()),
        Json::Object(map) => Cbor::Map(
            map.iter()
                .map(|(k, v)| (Cbor::Text(k.clone()), to_cbor(rng, v, Some(k))))
                .collect(),
        ),
    }
}

fn operation_index(name: &str) -> u8 {
    let index = fuzz_entry::kinesis_operations()
        .iter()
        .position(|op| *op == name)
        .unwrap_or_else(|| panic!("{name} is not an operation"));
    u8::try_from(index).unwrap()
}

/// Runs `count` inputs from `next` through `entry`; returns how many were accepted.
fn run(
    count: usize,
    mut next: impl FnMut(&mut StdRng) -> Vec<u8>,
    entry: impl Fn(&[u8]) -> bool,
) -> usize {
    let mut rng = StdRng::seed_from_u64(16);
    (0..count).filter(|_| entry(&next(&mut rng))).count()
}

fn kinesis(cbor: bool) {
    let target = if cbor { "kinesis_cbor" } else { "kinesis_json" };
    let seeds = seeds(target);
    for seed in &seeds {
        assert!(
            fuzz_entry::kinesis_request(seed, cbor),
            "seed rejected: {}",
            String::from_utf8_lossy(seed)
        );
    }
    // The seeds as JSON, whatever their wire format, to mutate structurally.
    let shapes: Vec<(u8, Json)> = seeds
        .iter()
        .map(|seed| {
            let body: Json = if cbor {
                let value: Cbor = ciborium::from_reader(&seed[1..]).unwrap();
                cbor_to_json(value)
            } else {
                serde_json::from_slice(&seed[1..]).unwrap()
            };
            (seed[0], body)
        })
        .collect();
    let operations = fuzz_entry::kinesis_operations().len();
    let accepted = run(
        INPUTS,
        |rng| {
            let (selector, mut body) = if rng.gen_bool(0.8) {
                shapes.choose(rng).unwrap().clone()
            } else {
                (rng.gen_range(0..operations) as u8, random_json(rng, 3))
            };
            let mut selector = selector;
            if rng.gen_bool(0.05) {
                selector = rng.gen();
            }
            for _ in 0..rng.gen_range(0..3) {
                mutate_json(rng, &mut body, &mut |rng| random_json(rng, 2));
            }
            let mut bytes = vec![selector];
            if cbor {
                ciborium::into_writer(&to_cbor(rng, &body, None), &mut bytes).unwrap();
            } else {
                serde_json::to_writer(&mut bytes, &body).unwrap();
            }
            if rng.gen_bool(0.3) {
                mutate_bytes(rng, &mut bytes);
            }
            bytes
        },
        |data| fuzz_entry::kinesis_request(data, cbor),
    );
    // Both outcomes must be common, or the generator is not reaching the decoders' depths.
    assert!(accepted > INPUTS / 20, "only {accepted} accepted");
    assert!(accepted < INPUTS * 19 / 20, "{accepted} accepted");
}

/// CBOR seeds read back for structural mutation: blobs become base64 again.
fn cbor_to_json(value: Cbor) -> Json {
    match value {
        Cbor::Null => Json::Null,
        Cbor::Bool(b) => Json::Bool(b),
        Cbor::Integer(i) => json!(i64::try_from(i128::from(i)).unwrap()),
        Cbor::Float(f) => json!(f),
        Cbor::Text(s) => Json::String(s),
        Cbor::Bytes(b) => Json::String(base64::engine::general_purpose::STANDARD.encode(b)),
        Cbor::Array(items) => Json::Array(items.into_iter().map(cbor_to_json).collect()),
        Cbor::Map(entries) => Json::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k.into_text().unwrap(), cbor_to_json(v)))
                .collect(),
        ),
        Cbor::Tag(1, inner) => match *inner {
            Cbor::Integer(ms) => json!(i128::from(ms) as f64 / 1000.0),
            other => cbor_to_json(other),
        },
        Cbor::Tag(_, inner) => cbor_to_json(*inner),
        other => panic!("unexpected CBOR in a seed: {other:?}"),
    }
}

#[test]
fn kinesis_json_requests_never_panic() {
    kinesis(false);
}

#[test]
fn kinesis_cbor_requests_never_panic() {
    kinesis(true);
}

#[test]
fn subscribe_to_shard_requests_decode_in_both_formats() {
    // Guards the selector mapping the seeds rely on: SubscribeToShard is decoded too.
    let body = br#"{"ConsumerARN":"c","ShardId":"s","StartingPosition":{"Type":"LATEST"}}"#;
    let mut data = vec![operation_index("SubscribeToShard")];
    data.extend_from_slice(body);
    assert!(fuzz_entry::kinesis_request(&data, false));
    data.truncate(1);
    data.extend_from_slice(br#"{"ShardId":"s"}"#);
    assert!(!fuzz_entry::kinesis_request(&data, false));
}

#[test]
fn event_stream_frames_round_trip() {
    let seeds = seeds("event_stream");
    for seed in &seeds {
        fuzz_entry::event_stream(seed);
    }
    // A frame as AWS sends it must decode: the raw half of the target is not vacuous.
    let frame = seeds.iter().find(|s| fuzz_entry::event_stream(s));
    assert!(frame.is_some(), "no seed is a whole frame");
    let accepted = run(
        EVENT_STREAM_INPUTS,
        |rng| {
            let mut bytes = if rng.gen_bool(0.5) {
                seeds.choose(rng).unwrap().clone()
            } else {
                structured_event_input(rng)
            };
            if rng.gen_bool(0.5) {
                mutate_bytes(rng, &mut bytes);
            }
            bytes
        },
        fuzz_entry::event_stream,
    );
    assert!(accepted > 0, "no mutated frame decoded");
}

/// The layout `fuzz_entry::event_stream` reads: format, records, millis behind, message.
fn structured_event_input(rng: &mut StdRng) -> Vec<u8> {
    let mut out = vec![rng.gen(), rng.gen_range(0..8)];
    let chunk = |rng: &mut StdRng, out: &mut Vec<u8>| {
        let len = rng.gen_range(0..=255usize);
        out.push(len as u8);
        out.extend((0..len).map(|_| rng.gen::<u8>()));
    };
    for _ in 0..out[1] {
        chunk(rng, &mut out);
        let key: String = (0..rng.gen_range(1..20))
            .map(|_| rng.gen::<char>())
            .collect();
        let key = &key.as_bytes()[..key.len().min(255)];
        out.push(key.len() as u8);
        out.extend_from_slice(key);
        out.extend(rng.gen::<u64>().to_be_bytes());
        out.push(rng.gen());
        out.extend(rng.gen::<u64>().to_be_bytes());
        out.extend(rng.gen::<u64>().to_be_bytes());
    }
    out.extend(rng.gen::<u64>().to_be_bytes());
    chunk(rng, &mut out);
    out
}

/// Attributes of the item the expressions are evaluated against, and some it lacks.
const ATTRIBUTES: &[&str] = &[
    "leaseKey",
    "sk",
    "leaseOwner",
    "leaseCounter",
    "checkpoint",
    "ownerSwitchesSinceCheckpoint",
    "parentShardId",
    "hashKeyRange",
    "childShardIds",
    "blob",
    "gone",
    "flag",
    "missing",
    "size",
    "name",
];

/// Builds DynamoDB expressions from the grammar, recording the placeholders they use.
struct ExpressionWriter<'r> {
    rng: &'r mut StdRng,
    names: Map<String, Json>,
    values: Map<String, Json>,
}

impl ExpressionWriter<'_> {
    fn attr_value(&mut self, depth: u32) -> Json {
        let rng = &mut *self.rng;
        const NUMBERS: &[&str] = &[
            "0",
            "1",
            "-1",
            "42",
            "1.5",
            "-0",
            "1e125",
            "-1e-130",
            "9.99999999999999999999999999999999999999E+125",
            "123456789012345678901234567890123456789",
            "0.000000000000000000000000000000000000001",
            "1e126",
            "abc",
            "",
        ];
        match rng.gen_range(0..if depth == 0 { 8 } else { 10 }) {
            0 => json!({"S": random_text(rng)}),
            1 | 2 => json!({"N": *NUMBERS.choose(rng).unwrap()}),
            3 => json!({"B": *["AAEC", "", "!!", "aGVsbG8="].choose(rng).unwrap()}),
            4 => {
                json!({"SS": (0..rng.gen_range(0..3)).map(|i| format!("shardId-00000000000{i}")).collect::<Vec<_>>()})
            }
            5 => {
                json!({"NS": (0..rng.gen_range(0..3)).map(|_| *NUMBERS.choose(rng).unwrap()).collect::<Vec<_>>()})
            }
            6 => json!({"BOOL": rng.gen::<bool>()}),
            7 => json!({"NULL": rng.gen_bool(0.9)}),
            8 => {
                json!({"L": (0..rng.gen_range(0..3)).map(|_| self.attr_value(depth - 1)).collect::<Vec<_>>()})
            }
            _ => {
                let entries: Map<String, Json> = (0..rng.gen_range(0..3))
                    .map(|i| (format!("k{i}"), self.attr_value(depth - 1)))
                    .collect();
                json!({ "M": entries })
            }
        }
    }

    fn value(&mut self) -> String {
        let name = format!(":v{}", self.rng.gen_range(0..6));
        if !self.values.contains_key(&name) || self.rng.gen_bool(0.1) {
            let value = self.attr_value(2);
            self.values.insert(name.clone(), value);
        }
        name
    }

    fn path(&mut self) -> String {
        let mut path = if self.rng.gen_bool(0.3) {
            let name = format!("#n{}", self.rng.gen_range(0..4));
            let attr = *ATTRIBUTES.choose(self.rng).unwrap();
            self.names
                .entry(name.clone())
                .or_insert_with(|| json!(attr));
            name
        } else {
            (*ATTRIBUTES.choose(self.rng).unwrap()).to_owned()
        };
        while self.rng.gen_bool(0.25) {
            if self.rng.gen_bool(0.5) {
                path += &format!(
                    "[{}]",
                    *[0u64, 1, 2, 99, u64::MAX].choose(self.rng).unwrap()
                );
            } else {
                path += ".";
                path += ATTRIBUTES.choose(self.rng).unwrap();
            }
        }
        path
    }

    fn operand(&mut self) -> String {
        match self.rng.gen_range(0..5) {
            0 | 1 => self.path(),
            2 => format!("size({})", self.path()),
            _ => self.value(),
        }
    }

    fn condition(&mut self, depth: u32) -> String {
        let choice = self.rng.gen_range(0..if depth == 0 { 8 } else { 12 });
        match choice {
            0 | 1 => {
                let op = *["=", "<>", "<", "<=", ">", ">="].choose(self.rng).unwrap();
                format!("{} {op} {}", self.operand(), self.operand())
            }
            2 => format!(
                "{} BETWEEN {} AND {}",
                self.operand(),
                self.operand(),
                self.operand()
            ),
            3 => {
                let items: Vec<String> = (0..self.rng.gen_range(1..4))
                    .map(|_| self.operand())
                    .collect();
                format!("{} IN ({})", self.operand(), items.join(", "))
            }
            4 => format!("attribute_exists({})", self.path()),
            5 => format!("attribute_not_exists({})", self.path()),
            6 => format!("attribute_type({}, {})", self.path(), self.value()),
            7 => {
                let function = *["begins_with", "contains"].choose(self.rng).unwrap();
                format!("{function}({}, {})", self.operand(), self.operand())
            }
            8 | 9 => {
                let joiner = *["AND", "OR", "and", "or"].choose(self.rng).unwrap();
                format!(
                    "{} {joiner} {}",
                    self.condition(depth - 1),
                    self.condition(depth - 1)
                )
            }
            10 => format!("NOT {}", self.condition(depth - 1)),
            _ => format!("({})", self.condition(depth - 1)),
        }
    }

    fn set_value(&mut self, depth: u32) -> String {
        match self.rng.gen_range(0..if depth == 0 { 2 } else { 5 }) {
            0 => self.value(),
            1 => self.path(),
            2 => format!(
                "{} {} {}",
                self.set_value(depth - 1),
                *["+", "-"].choose(self.rng).unwrap(),
                self.set_value(depth - 1)
            ),
            3 => format!(
                "if_not_exists({}, {})",
                self.path(),
                self.set_value(depth - 1)
            ),
            _ => format!(
                "list_append({}, {})",
                self.set_value(depth - 1),
                self.set_value(depth - 1)
            ),
        }
    }

    fn update(&mut self) -> String {
        let mut clauses = Vec::new();
        for clause in ["SET", "REMOVE", "ADD", "DELETE"] {
            if !self.rng.gen_bool(0.4) {
                continue;
            }
            let actions: Vec<String> = (0..self.rng.gen_range(1..3))
                .map(|_| match clause {
                    "SET" => format!("{} = {}", self.path(), self.set_value(2)),
                    "REMOVE" => self.path(),
                    _ => format!("{} {}", self.path(), self.value()),
                })
                .collect();
            clauses.push(format!("{clause} {}", actions.join(", ")));
        }
        clauses.shuffle(self.rng);
        clauses.join(" ")
    }

    fn projection(&mut self) -> String {
        (0..self.rng.gen_range(1..4))
            .map(|_| self.path())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn dynamodb_request(rng: &mut StdRng) -> Json {
    let mut writer = ExpressionWriter {
        rng,
        names: Map::new(),
        values: Map::new(),
    };
    let mut body = json!({"TableName": "app", "Key": {"leaseKey": {"S": "shardId-000000000001"}}});
    let members = [
        "ConditionExpression",
        "KeyConditionExpression",
        "FilterExpression",
        "ProjectionExpression",
        "UpdateExpression",
    ];
    for member in members {
        if !writer.rng.gen_bool(0.35) {
            continue;
        }
        body[member] = Json::String(match member {
            "KeyConditionExpression" => {
                let mut text = format!("leaseKey = {}", writer.value());
                if writer.rng.gen_bool(0.5) {
                    let sort = match writer.rng.gen_range(0..3) {
                        0 => format!("sk BETWEEN {} AND {}", writer.value(), writer.value()),
                        1 => format!("begins_with(sk, {})", writer.value()),
                        _ => format!(
                            "sk {} {}",
                            ["=", "<", "<=", ">", ">="].choose(writer.rng).unwrap(),
                            writer.value()
                        ),
                    };
                    text += &format!(" AND {sort}");
                }
                if writer.rng.gen_bool(0.3) {
                    text = writer.condition(1);
                }
                text
            }
            "ProjectionExpression" => writer.projection(),
            "UpdateExpression" => writer.update(),
            _ => writer.condition(2),
        });
    }
    if writer.rng.gen_bool(0.2) {
        body["Item"] = json!({"leaseKey": {"S": "k"}, "sk": writer.attr_value(1), "other": writer.attr_value(2)});
    }
    let ExpressionWriter {
        rng,
        mut names,
        mut values,
    } = writer;
    // Now and then an unused or a missing placeholder, which the checks must refuse.
    if rng.gen_bool(0.05) {
        names.insert("#unused".into(), json!("x"));
    }
    if rng.gen_bool(0.05) && !values.is_empty() {
        let key = values.keys().next().unwrap().clone();
        values.remove(&key);
    }
    if !names.is_empty() {
        body["ExpressionAttributeNames"] = Json::Object(names);
    }
    if !values.is_empty() {
        body["ExpressionAttributeValues"] = Json::Object(values);
    }
    body
}

#[test]
fn dynamodb_expressions_never_panic() {
    let seeds = seeds("dynamodb_expressions");
    for seed in &seeds {
        assert!(
            fuzz_entry::dynamodb_expressions(seed),
            "seed rejected: {}",
            String::from_utf8_lossy(seed)
        );
    }
    let shapes: Vec<Json> = seeds
        .iter()
        .map(|s| serde_json::from_slice(s).unwrap())
        .collect();
    let accepted = run(
        INPUTS,
        |rng| {
            let mut body = if rng.gen_bool(0.3) {
                shapes.choose(rng).unwrap().clone()
            } else {
                dynamodb_request(rng)
            };
            // Mutate inside one expression, where most of the parser's states are.
            let expressions: Vec<String> = body
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| k.ends_with("Expression"))
                .cloned()
                .collect();
            if let Some(member) = expressions.choose(rng) {
                if rng.gen_bool(0.3) {
                    let mut text = body[member].as_str().unwrap().as_bytes().to_vec();
                    mutate_bytes(rng, &mut text);
                    body[member] = Json::String(String::from_utf8_lossy(&text).into_owned());
                }
            }
            let mut bytes = serde_json::to_vec(&body).unwrap();
            if rng.gen_bool(0.05) {
                mutate_bytes(rng, &mut bytes);
            }
            bytes
        },
        fuzz_entry::dynamodb_expressions,
    );
    assert!(accepted > INPUTS / 20, "only {accepted} accepted");
    assert!(accepted < INPUTS * 19 / 20, "{accepted} accepted");
}
