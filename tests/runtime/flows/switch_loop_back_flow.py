"""A loop whose switch goes back to an earlier step: prepare -> check -> prepare ...
until the total reaches the target."""

from batchwright import FlowSpec, step


class SwitchLoopBackFlow(FlowSpec):
    @step
    def start(self):
        self.total = 0
        self.prepared = 0
        self.next(self.prepare)

    @step
    def prepare(self):
        self.prepared += 1
        self.next(self.check)

    @step
    def check(self):
        self.total += 5
        self.state = "done" if self.total >= 20 else "again"
        self.next({"again": self.prepare, "done": self.end}, condition="state")

    @step
    def end(self):
        self.final = (self.total, self.prepared)


if __name__ == "__main__":
    SwitchLoopBackFlow()
