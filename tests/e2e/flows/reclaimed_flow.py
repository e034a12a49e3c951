"""A Batch step with @retry, so it goes to a Spot queue; its Spot capacity can be taken
away under it, which must not use up the @retry."""

import time

from batchwright import FlowSpec, Parameter, batch, current, retry, step


class ReclaimedFlow(FlowSpec):
    seconds = Parameter("seconds", default=15, help="how long the Batch step works")
    label = Parameter("label", default="", help="tells one test's runs apart")

    @step
    def start(self):
        self.next(self.train)

    @retry(times=1, minutes_between_retries=0)
    @batch(cpu=1, memory=1024)
    @step
    def train(self):
        time.sleep(self.seconds)
        self.retry_count = current.retry_count
        self.job_id = current.batch.job_id
        self.next(self.end)

    @step
    def end(self):
        print("trained on attempt", self.retry_count)


if __name__ == "__main__":
    ReclaimedFlow()
