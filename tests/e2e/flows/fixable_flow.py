"""A run that fails on Batch until the environment says it is fixed; resumed, it reruns
only the failed step."""

import os

from batchwright import FlowSpec, batch, current, step


class FixableFlow(FlowSpec):
    @step
    def start(self):
        self.prepared_in = current.task_id
        self.next(self.prepare)

    @batch
    @step
    def prepare(self):
        self.prepared_job = current.batch.job_id
        self.next(self.fragile)

    @batch
    @step
    def fragile(self):
        if os.environ.get("FRAGILE_FIXED") != "1":
            raise RuntimeError("not fixed yet")
        self.fixed_job = current.batch.job_id
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FixableFlow()
