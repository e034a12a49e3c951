"""A foreach inside a foreach: each foreach is one array job when deployed, so a state
machine cannot run it (the compiler refuses step 'by_color')."""

from batchwright import FlowSpec, batch, step


class NestedForeachFlow(FlowSpec):
    @batch(cpu=1, memory=512)
    @step
    def start(self):
        self.colors = ["red", "blue"]
        self.next(self.by_color, foreach="colors")

    @batch(cpu=1, memory=512)
    @step
    def by_color(self):
        self.color = self.input
        self.sizes = [1, 2]
        self.next(self.by_size, foreach="sizes")

    @batch(cpu=1, memory=512)
    @step
    def by_size(self):
        self.label = f"{self.color}-{self.input}"
        self.next(self.join_sizes)

    @batch(cpu=1, memory=512)
    @step
    def join_sizes(self, inputs):
        self.labels = [i.label for i in inputs]
        self.next(self.join_colors)

    @batch(cpu=1, memory=512)
    @step
    def join_colors(self, inputs):
        self.labels = [label for i in inputs for label in i.labels]
        self.next(self.end)

    @batch(cpu=1, memory=512)
    @step
    def end(self):
        pass


if __name__ == "__main__":
    NestedForeachFlow()
