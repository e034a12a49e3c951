"""Artifacts cross between local and Batch steps both ways; a 16-way foreach on Batch."""

from batchwright import FlowSpec, Parameter, batch, current, step


class ExchangeFlow(FlowSpec):
    label = Parameter("label", default="none", help="tells the test's jobs apart")

    @step
    def start(self):
        self.numbers = list(range(16))
        self.greeting = f"from local {self.label}"
        self.next(self.square, foreach="numbers")

    @batch(cpu=1, memory=1024)
    @step
    def square(self):
        assert self.greeting == f"from local {self.label}"
        self.job_id = current.batch.job_id
        self.result = self.input * self.input
        print(f"square of {self.input} is {self.result} in job {self.job_id}")
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = sorted(i.result for i in inputs)
        self.job_ids = sorted(i.job_id for i in inputs)
        self.next(self.summarize)

    @batch
    @step
    def summarize(self):
        self.total = sum(self.results)
        print(f"total {self.total}")
        self.next(self.end)

    @step
    def end(self):
        self.checked = self.total == sum(n * n for n in range(16))


if __name__ == "__main__":
    ExchangeFlow()
