"""A switch that loops back to itself ten times (each lap a new task of loop_step), then
leaves the loop. With FAIL_AT_COUNT=n the lap that counts n fails (for resume)."""

import os

from batchwright import FlowSpec, current, step


class SwitchRecursiveFlow(FlowSpec):
    @step
    def start(self):
        self.count = 0
        self.max_iterations = 10
        self.laps = []
        self.next(self.loop_step)

    @step
    def loop_step(self):
        self.count += 1
        self.laps = [*self.laps, current.task_id]
        if str(self.count) == os.environ.get("FAIL_AT_COUNT"):
            raise RuntimeError(f"lap {self.count} breaks")
        self.loop_status = "continue" if self.count < self.max_iterations else "exit"
        self.next({"continue": self.loop_step, "exit": self.exit_loop}, condition="loop_status")

    @step
    def exit_loop(self):
        assert self.count == 10
        self.next(self.end)

    @step
    def end(self):
        self.final = self.count


if __name__ == "__main__":
    SwitchRecursiveFlow()
