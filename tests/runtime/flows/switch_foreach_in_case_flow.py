"""A foreach (and its join) inside one case of a switch."""

from batchwright import FlowSpec, Parameter, step


class SwitchForeachInCaseFlow(FlowSpec):
    mode = Parameter("mode", default="process")

    @step
    def start(self):
        self.condition = self.mode
        self.next(
            {"process": self.process_items, "skip": self.skip_processing}, condition="condition"
        )

    @step
    def process_items(self):
        self.items_to_process = ["item_1", "item_2"]
        self.next(self.do_work, foreach="items_to_process")

    @step
    def do_work(self):
        self.work = self.input.upper()
        self.next(self.join_work)

    @step
    def join_work(self, inputs):
        self.result = [i.work for i in inputs]
        self.next(self.end)

    @step
    def skip_processing(self):
        self.result = []
        self.next(self.end)

    @step
    def end(self):
        self.final = self.result


if __name__ == "__main__":
    SwitchForeachInCaseFlow()
