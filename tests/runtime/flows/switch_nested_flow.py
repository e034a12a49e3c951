"""A switch whose case is another switch (Metaflow's switch_nested graph)."""

from batchwright import FlowSpec, Parameter, step


class SwitchNestedFlow(FlowSpec):
    first = Parameter("first", default="case1")
    second = Parameter("second", default="case2_2")

    @step
    def start(self):
        self.condition1 = self.first
        self.next({"case1": self.switch2, "case2": self.b}, condition="condition1")

    @step
    def switch2(self):
        self.condition2 = self.second
        self.next({"case2_1": self.c, "case2_2": self.d}, condition="condition2")

    @step
    def b(self):
        self.path = "b"
        self.next(self.end)

    @step
    def c(self):
        self.path = "c"
        self.next(self.end)

    @step
    def d(self):
        self.path = "d"
        self.next(self.end)

    @step
    def end(self):
        self.final = self.path


if __name__ == "__main__":
    SwitchNestedFlow()
