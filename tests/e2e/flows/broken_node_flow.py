"""A parallel step on Batch whose node 1 fails on its first attempt (on every attempt
with --always): the whole multi-node job is retried, or the run fails with node 1's
error."""

from batchwright import FlowSpec, Parameter, batch, current, parallel, retry, step


class BrokenNodeFlow(FlowSpec):
    always = Parameter("always", default=False, type=bool, help="node 1 fails every time")

    @step
    def start(self):
        self.next(self.work, num_parallel=2)

    @batch(cpu=1, memory=1024)
    @retry(times=1, minutes_between_retries=0)
    @parallel
    @step
    def work(self):
        node = current.parallel
        if node.node_index == 1 and (self.always or current.retry_count == 0):
            raise RuntimeError(f"node 1 breaks on attempt {current.retry_count}")
        self.rank = node.node_index
        self.attempt = current.retry_count
        self.job_id = current.batch.job_id
        self.next(self.join)

    @step
    def join(self, inputs):
        self.ranks = [i.rank for i in inputs]
        self.attempts = [i.attempt for i in inputs]
        self.job_ids = [i.job_id for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    BrokenNodeFlow()
