"""A parallel step whose node FAIL_NODE fails on the first attempt (all attempts when
FAIL_ALWAYS is set), for the gang's retry, failure and resume."""

import os

from batchwright import FlowSpec, current, parallel, retry, step


class GangFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.work, num_parallel=3)

    @retry(times=int(os.environ.get("GANG_RETRIES", "1")), minutes_between_retries=0)
    @parallel
    @step
    def work(self):
        node = current.parallel
        fail = int(os.environ.get("FAIL_NODE", "-1"))
        if node.node_index == fail and (os.environ.get("FAIL_ALWAYS") or current.retry_count == 0):
            raise RuntimeError(f"node {node.node_index} breaks")
        self.rank = node.node_index
        self.attempt = current.retry_count
        self.control = node.control_task_id
        self.task = current.task_id
        self.next(self.join)

    @step
    def join(self, inputs):
        self.ranks = [i.rank for i in inputs]
        self.attempts = [i.attempt for i in inputs]
        self.controls = {i.control for i in inputs}
        self.tasks = [i.task for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    GangFlow()
