"""Batch steps that hang: stopped by @timeout, or by an interrupt of the run."""

import time

from batchwright import FlowSpec, Parameter, batch, step, timeout


class SleepyFlow(FlowSpec):
    seconds = Parameter("seconds", default=600, help="how long the Batch steps sleep")

    @step
    def start(self):
        self.next(self.hang)

    @timeout(seconds=60)
    @batch
    @step
    def hang(self):
        print("hanging", flush=True)
        time.sleep(self.seconds)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SleepyFlow()
