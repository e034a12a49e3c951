"""@retry recovers from a failure that happens on the first attempt only."""

from batchwright import FlowSpec, current, retry, step


class RetryFlow(FlowSpec):
    """The flaky step fails on attempt 0 and succeeds on attempt 1."""

    @step
    def start(self):
        """Nothing to prepare."""
        self.next(self.flaky)

    @retry(times=2, minutes_between_retries=0)
    @step
    def flaky(self):
        """Fail the first time."""
        if current.retry_count == 0:
            raise RuntimeError("transient failure on the first attempt")
        self.attempt_that_worked = current.retry_count
        self.next(self.end)

    @step
    def end(self):
        """Done."""


if __name__ == "__main__":
    RetryFlow()
