"""A foreach of Batch steps (one array job) that work for a while: long enough to be
interrupted, to lose the orchestrator, or to live through throttling and an outage."""

import time

from batchwright import FlowSpec, Parameter, batch, step


class FanoutFlow(FlowSpec):
    seconds = Parameter("seconds", default=20, help="how long each Batch step works")
    width = Parameter("width", default=4, help="how many Batch steps")
    label = Parameter("label", default="", help="tells one test's runs apart")

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @batch(cpu=1, memory=1024)
    @step
    def work(self):
        time.sleep(self.seconds)
        self.square = self.input * self.input
        self.next(self.join)

    @step
    def join(self, inputs):
        self.squares = sorted(i.square for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("squares", self.squares)


if __name__ == "__main__":
    FanoutFlow()
