"""A MultiLangDaemon child written against the raw protocol, with misbehaviour on demand.

CHILD_MODE is a comma-separated list of:
- checkpoint_in_initialize: ask for a checkpoint while handling initialize (the daemon must
  answer with an error, as the Java daemon does);
- garbage: print a line that is not a protocol message before every answer;
- crash_once: exit in the middle of the first non-empty batch of each shard, before answering;
- hang_once: stop answering during the first non-empty batch of each shard;
- stderr_at_exit: when stdin closes, start a helper that shares stderr, write a last stderr
  line without a newline (Python flushes it only as it exits) and exit; the helper writes
  another such line a moment later.
Events go to one JSON-lines file per shard and process in CHILD_OUT_DIR.
"""
import base64
import json
import os
import subprocess
import sys
import time

MODES = set(filter(None, os.environ.get("CHILD_MODE", "").split(",")))
OUT_DIR = os.environ["CHILD_OUT_DIR"]
shard = None
journal = None
LATE_WRITER = (
    "import sys, time; time.sleep(0.3); sys.stderr.write('\\nlast words of ' + sys.argv[1])"
)


def send(message):
    sys.stdout.write("\n" + json.dumps(message) + "\n")
    sys.stdout.flush()


def receive():
    while True:
        line = sys.stdin.readline()
        if not line:
            if "stderr_at_exit" in MODES:
                # A helper process that shares stderr finishes writing after this one exits.
                subprocess.Popen(
                    [sys.executable, "-c", LATE_WRITER, str(os.getpid())],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                )
                sys.stderr.write("parting words of %d" % os.getpid())
            sys.exit(0)
        if line.strip():
            return json.loads(line)


def log(event, **fields):
    fields["event"] = event
    fields["shard"] = shard
    fields["pid"] = os.getpid()
    journal.write(json.dumps(fields) + "\n")
    journal.flush()


def checkpoint():
    send({"action": "checkpoint", "sequenceNumber": None, "subSequenceNumber": None})
    answer = receive()
    assert answer["action"] == "checkpoint", answer
    return answer["error"]


def first_batch(kind):
    """True once per shard: the marker file remembers it across child processes."""
    marker = os.path.join(OUT_DIR, "%s.%s" % (shard, kind))
    if os.path.exists(marker):
        return False
    open(marker, "w").close()
    return True


while True:
    message = receive()
    action = message["action"]
    if "garbage" in MODES:
        print("this line is not a protocol message {", flush=True)
    if action == "initialize":
        shard = message["shardId"]
        path = os.path.join(OUT_DIR, "%s-%d.jsonl" % (shard, os.getpid()))
        journal = open(path, "a")
        log("initialize", sequence_number=message["sequenceNumber"])
        if "checkpoint_in_initialize" in MODES:
            log("initialize_checkpoint", error=checkpoint())
    elif action == "processRecords":
        records = message["records"]
        if records and "crash_once" in MODES and first_batch("crashed"):
            log("crashing", count=len(records))
            sys.exit(3)
        if records and "hang_once" in MODES and first_batch("hung"):
            log("hanging", count=len(records))
            time.sleep(3600)
        for record in records:
            log(
                "record",
                action=record["action"],
                data=base64.b64decode(record["data"]).decode("utf-8"),
                sequence_number=record["sequenceNumber"],
            )
        log("checkpoint", error=checkpoint())
    elif action in ("shardEnded", "shutdownRequested"):
        log(action, error=checkpoint())
    elif action == "leaseLost":
        log("lease_lost")
    send({"action": "status", "responseFor": action})
