"""A switch at the top level: ``--mode`` picks one of three cases, which meet at end."""

from batchwright import FlowSpec, Parameter, step


class SwitchBasicFlow(FlowSpec):
    mode = Parameter("mode", default="case2")

    @step
    def start(self):
        self.condition = self.mode
        self.next(self.switch_step)

    @step
    def switch_step(self):
        self.seen = ["switch_step"]
        self.next({"case1": self.a, "case2": self.b, "case3": self.c}, condition="condition")

    @step
    def a(self):
        self.path = "a"
        self.next(self.end)

    @step
    def b(self):
        self.path = "b"
        self.next(self.end)

    @step
    def c(self):
        self.path = "c"
        self.next(self.end)

    @step
    def end(self):
        self.final = f"{self.seen[0]}->{self.path}"


if __name__ == "__main__":
    SwitchBasicFlow()
