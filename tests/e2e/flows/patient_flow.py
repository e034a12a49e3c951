"""A short Batch step with a @timeout shorter than the wait before it starts: the timeout
is about running time, so the wait must not count."""

import time

from batchwright import FlowSpec, Parameter, batch, current, step, timeout


class PatientFlow(FlowSpec):
    seconds = Parameter("seconds", default=5, help="how long the Batch step works")
    label = Parameter("label", default="", help="tells one test's runs apart")

    @step
    def start(self):
        self.next(self.work)

    @timeout(seconds=60)
    @batch(cpu=1, memory=1024)
    @step
    def work(self):
        time.sleep(self.seconds)
        self.job_id = current.batch.job_id
        self.worked = self.seconds
        self.next(self.end)

    @step
    def end(self):
        print("worked", self.worked)


if __name__ == "__main__":
    PatientFlow()
