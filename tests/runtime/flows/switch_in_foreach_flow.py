"""A switch in each item of a foreach: each item takes its own case, the join sees all."""

from batchwright import FlowSpec, step


class SwitchInForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = [
            {"id": 1, "type": "type_a", "data": 100},
            {"id": 2, "type": "type_b", "data": 200},
            {"id": 3, "type": "type_a", "data": 300},
        ]
        self.next(self.process_item, foreach="items")

    @step
    def process_item(self):
        self.item_type = self.input["type"]
        self.next({"type_a": self.handle_a, "type_b": self.handle_b}, condition="item_type")

    @step
    def handle_a(self):
        self.result = f"A({self.input['data'] * 2})"
        self.position = self.index
        self.next(self.join)

    @step
    def handle_b(self):
        self.result = f"B({self.input['data'] / 2.0})"
        self.position = self.index
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = [i.result for i in inputs]
        self.positions = [i.position for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SwitchInForeachFlow()
