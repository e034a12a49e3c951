"""A switch: only one case runs, which a deployed flow cannot express yet (the compiler
refuses step 'start')."""

from batchwright import FlowSpec, batch, step


class SwitchFlow(FlowSpec):
    @batch
    @step
    def start(self):
        self.mode = "a"
        self.next({"a": self.a, "b": self.b}, condition="mode")

    @batch
    @step
    def a(self):
        self.next(self.end)

    @batch
    @step
    def b(self):
        self.next(self.end)

    @batch
    @step
    def end(self):
        pass


if __name__ == "__main__":
    SwitchFlow()
