"""@timeout stops a hung step; @catch records the timeout so the run continues."""

import time

from batchwright import FlowSpec, catch, step, timeout


class TimeoutFlow(FlowSpec):
    """The hang step sleeps far longer than its timeout allows."""

    @step
    def start(self):
        """Nothing to prepare."""
        self.next(self.hang)

    @catch(var="timeout_failure")
    @timeout(seconds=1)
    @step
    def hang(self):
        """Sleep for an hour (stopped after one second)."""
        time.sleep(3600)
        self.next(self.end)

    @step
    def end(self):
        """Report what stopped the hang step."""
        self.stopped_by = self.timeout_failure.type if self.timeout_failure else None


if __name__ == "__main__":
    TimeoutFlow()
