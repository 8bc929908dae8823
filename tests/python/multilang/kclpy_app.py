"""An amazon_kclpy (v3 API) record processor, run unchanged under kcl-multilang.

Every event is appended as a JSON line to a file of its own (one per shard and process) in
the directory named by KCLPY_OUT_DIR, for the test to read. It checkpoints after every batch,
at shard end and on shutdown, the way the amazon_kclpy sample does.
"""
import json
import os
import sys

from amazon_kclpy import kcl
from amazon_kclpy.v3 import processor


class JournalingProcessor(processor.RecordProcessorBase):
    def __init__(self):
        self.shard_id = None
        self.out = None

    def log(self, event, **fields):
        fields["event"] = event
        fields["shard"] = self.shard_id
        self.out.write(json.dumps(fields) + "\n")
        self.out.flush()

    def checkpoint(self, checkpointer, at):
        try:
            checkpointer.checkpoint()
            self.log("checkpoint", at=at)
        except kcl.CheckpointError as err:
            self.log("checkpoint_error", at=at, error=str(err))

    def initialize(self, initialize_input):
        self.shard_id = initialize_input.shard_id
        path = os.path.join(
            os.environ["KCLPY_OUT_DIR"], "%s-%d.jsonl" % (self.shard_id, os.getpid())
        )
        self.out = open(path, "a")
        self.log("initialize", sequence_number=initialize_input.sequence_number)

    def process_records(self, process_records_input):
        for record in process_records_input.records:
            self.log(
                "record",
                data=record.binary_data.decode("utf-8"),
                sequence_number=record.sequence_number,
                sub_sequence_number=record.sub_sequence_number,
                partition_key=record.partition_key,
            )
        self.checkpoint(process_records_input.checkpointer, "batch")

    def lease_lost(self, lease_lost_input):
        self.log("lease_lost")

    def shard_ended(self, shard_ended_input):
        self.checkpoint(shard_ended_input.checkpointer, "shard_end")
        self.log("shard_ended")

    def shutdown_requested(self, shutdown_requested_input):
        self.checkpoint(shutdown_requested_input.checkpointer, "shutdown")
        self.log("shutdown_requested")


if __name__ == "__main__":
    kcl.KCLProcess(JournalingProcessor()).run()
