"""A switch inside one branch of a static split; the join gets one input per branch."""

from batchwright import FlowSpec, Parameter, step


class SwitchInBranchFlow(FlowSpec):
    mode = Parameter("mode", default="case2")

    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.condition = self.mode
        self.next({"case1": self.c, "case2": self.d}, condition="condition")

    @step
    def b(self):
        self.path = "b"
        self.next(self.join)

    @step
    def c(self):
        self.path = "c"
        self.next(self.join)

    @step
    def d(self):
        self.path = "d"
        self.next(self.join)

    @step
    def join(self, inputs):
        self.paths = sorted(i.path for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SwitchInBranchFlow()
