"""A loop through a switch inside each item of a foreach (Metaflow's
recursive_switch_inside_foreach graph); keys are "True"/"False" and the condition is a
str(). With FAIL_ITEM=B and FAIL_AT_COUNT=3 that lap of item B fails (for resume)."""

import os

from batchwright import FlowSpec, step


class SwitchRecursiveInForeachFlow(FlowSpec):
    @step
    def start(self):
        self.items = [
            {"id": "A", "iterations": 3},
            {"id": "B", "iterations": 5},
            {"id": "C", "iterations": 2},
        ]
        self.next(self.start_loop_for_item, foreach="items")

    @step
    def start_loop_for_item(self):
        self.item_id = self.input["id"]
        self.max_loops = self.input["iterations"]
        self.item_loop_count = 0
        self.next(self.loop_body)

    @step
    def loop_body(self):
        self.item_loop_count += 1
        if (self.item_id, str(self.item_loop_count)) == (
            os.environ.get("FAIL_ITEM"),
            os.environ.get("FAIL_AT_COUNT"),
        ):
            raise RuntimeError(f"item {self.item_id} lap {self.item_loop_count} breaks")
        self.should_continue = str(self.item_loop_count < self.max_loops)
        self.next(
            {"True": self.loop_body, "False": self.exit_item_loop}, condition="should_continue"
        )

    @step
    def exit_item_loop(self):
        assert self.max_loops == self.item_loop_count
        self.result = f"Item {self.item_id} finished after {self.item_loop_count} iterations."
        self.position = self.index
        self.next(self.join)

    @step
    def join(self, inputs):
        self.results = sorted(i.result for i in inputs)
        self.positions = [i.position for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    SwitchRecursiveInForeachFlow()
