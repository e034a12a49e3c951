"""A static split (and its join) inside one case of a switch."""

from batchwright import FlowSpec, Parameter, step


class SwitchBranchInCaseFlow(FlowSpec):
    mode = Parameter("mode", default="process")

    @step
    def start(self):
        self.condition = self.mode
        self.next({"process": self.process_branch, "skip": self.skip_path}, condition="condition")

    @step
    def process_branch(self):
        self.next(self.p1, self.p2)

    @step
    def p1(self):
        self.part = 1
        self.next(self.process_join)

    @step
    def p2(self):
        self.part = 2
        self.next(self.process_join)

    @step
    def process_join(self, inputs):
        self.result = sum(i.part for i in inputs)
        self.next(self.end)

    @step
    def skip_path(self):
        self.result = "skipped"
        self.next(self.end)

    @step
    def end(self):
        self.final = self.result


if __name__ == "__main__":
    SwitchBranchInCaseFlow()
