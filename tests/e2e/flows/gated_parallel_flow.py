"""A parallel step of two nodes on Batch that finish only once an S3 object (``--gate``)
exists: long enough to lose the orchestrator while its multi-node job runs."""

from fanout_flow import wait_for_object

from batchwright import FlowSpec, Parameter, batch, current, parallel, step


class GatedParallelFlow(FlowSpec):
    gate = Parameter("gate", default="", help="an S3 object every node waits for")

    @step
    def start(self):
        self.next(self.work, num_parallel=2)

    @batch(cpu=1, memory=1024)
    @parallel
    @step
    def work(self):
        if self.gate:
            wait_for_object(self.gate, limit=900)
        self.rank = current.parallel.node_index
        self.job_id = current.batch.job_id
        self.next(self.join)

    @step
    def join(self, inputs):
        self.ranks = [i.rank for i in inputs]
        self.job_ids = [i.job_id for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    GatedParallelFlow()
