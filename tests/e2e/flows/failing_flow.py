"""A Batch step that raises: the run fails with the exit code and the traceback shown."""

from batchwright import FlowSpec, batch, step


class FailingFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.explode)

    @batch
    @step
    def explode(self):
        raise ValueError("the batch step exploded on purpose")
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FailingFlow()
