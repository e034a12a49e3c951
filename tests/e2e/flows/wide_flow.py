"""A wide foreach of Batch steps (one array job) where chosen children fail their first
attempt: each failure is retried as a job of its own, not as the whole array."""

from batchwright import FlowSpec, Parameter, batch, current, retry, step


class WideFlow(FlowSpec):
    width = Parameter("width", default=300, help="how many Batch steps")
    fail = Parameter("fail", default="7,150", help="children whose first attempt fails")

    @step
    def start(self):
        self.items = list(range(self.width))
        self.next(self.work, foreach="items")

    @retry(times=1, minutes_between_retries=0)
    @batch(cpu=1, memory=512)
    @step
    def work(self):
        failing = {int(n) for n in self.fail.split(",") if n}
        if self.input in failing and current.retry_count == 0:
            raise RuntimeError(f"child {self.input} fails its first attempt on purpose")
        print(f"child {self.input} attempt {current.retry_count}")
        self.value = self.input
        self.attempt = current.retry_count
        self.job_id = current.batch.job_id
        self.next(self.join)

    @step
    def join(self, inputs):
        self.values = [i.value for i in inputs]
        self.retried = {i.value: i.job_id for i in inputs if i.attempt}
        self.first_tries = sorted({i.job_id.rsplit(":", 1)[0] for i in inputs if not i.attempt})
        self.next(self.end)

    @step
    def end(self):
        print("retried", sorted(self.retried))


if __name__ == "__main__":
    WideFlow()
