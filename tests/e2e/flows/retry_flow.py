"""@retry on a Batch step: the first attempt fails, the second (a new job) succeeds."""

from batchwright import FlowSpec, batch, current, retry, step


class RetryFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.flaky)

    @retry(times=1, minutes_between_retries=0)
    @batch
    @step
    def flaky(self):
        if current.retry_count == 0:
            raise RuntimeError("first attempt fails on purpose")
        self.attempt = current.retry_count
        self.job_id = current.batch.job_id
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    RetryFlow()
