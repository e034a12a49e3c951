"""A flow deployed as a state machine: a Parameter, a branch, a foreach of 8 and a step
that fails once and passes on its @retry."""

from batchwright import FlowSpec, Parameter, batch, current, retry, step


class ProductionFlow(FlowSpec):
    scale = Parameter("scale", type=int, default=1, help="multiplies every item")
    count = Parameter("count", type=int, default=8, help="how many items the foreach has")

    @batch(cpu=1, memory=512)
    @step
    def start(self):
        self.items = list(range(self.count))
        self.next(self.left, self.right)

    @batch(cpu=1, memory=512)
    @step
    def left(self):
        self.side = "left"
        self.next(self.join_sides)

    @retry(times=1, minutes_between_retries=0)
    @batch(cpu=1, memory=512)
    @step
    def right(self):
        if current.retry_count == 0:
            raise RuntimeError("the first attempt fails on purpose")
        self.side = "right"
        self.attempt = current.retry_count
        self.next(self.join_sides)

    @batch(cpu=1, memory=512)
    @step
    def join_sides(self, inputs):
        self.sides = sorted(i.side for i in inputs)
        self.right_attempt = inputs.right.attempt
        self.items = inputs.left.items
        self.next(self.square, foreach="items")

    @batch(cpu=1, memory=512)
    @step
    def square(self):
        self.value = self.input * self.input * self.scale
        self.next(self.gather)

    @batch(cpu=1, memory=512)
    @step
    def gather(self, inputs):
        self.values = [i.value for i in inputs]
        self.total = sum(self.values)
        self.next(self.end)

    @batch(cpu=1, memory=512)
    @step
    def end(self):
        pass


if __name__ == "__main__":
    ProductionFlow()
