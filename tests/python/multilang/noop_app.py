"""An amazon_kclpy (v3 API) processor that does nothing but checkpoint after every batch: the
load for measuring the kcl-multilang daemon's own throughput and per-batch overhead."""
from amazon_kclpy import kcl
from amazon_kclpy.v3 import processor


class NoOpProcessor(processor.RecordProcessorBase):
    def initialize(self, initialize_input):
        pass

    def process_records(self, process_records_input):
        process_records_input.checkpointer.checkpoint()

    def lease_lost(self, lease_lost_input):
        pass

    def shard_ended(self, shard_ended_input):
        shard_ended_input.checkpointer.checkpoint()

    def shutdown_requested(self, shutdown_requested_input):
        shutdown_requested_input.checkpointer.checkpoint()


if __name__ == "__main__":
    kcl.KCLProcess(NoOpProcessor()).run()
