"""@catch stores a step's exception as an artifact and lets the run go on."""

from batchwright import FlowSpec, catch, step


class CatchFlow(FlowSpec):
    """The divide step always fails; the end step reports what was caught."""

    @step
    def start(self):
        """Prepare a bad denominator."""
        self.denominator = 0
        self.next(self.divide)

    @catch(var="divide_failure")
    @step
    def divide(self):
        """Raises ZeroDivisionError."""
        self.result = 1 / self.denominator
        self.next(self.end)

    @step
    def end(self):
        """Report the caught exception."""
        self.failed = self.divide_failure is not None
        self.failure_type = self.divide_failure.type if self.failed else None


if __name__ == "__main__":
    CatchFlow()
