"""A foreach with a nested foreach: letters x numbers."""

from batchwright import FlowSpec, step


class ForeachFlow(FlowSpec):
    """Fan out over letters, then over numbers inside each letter."""

    @step
    def start(self):
        """The outer items."""
        self.letters = ["a", "b", "c"]
        self.next(self.per_letter, foreach="letters")

    @step
    def per_letter(self):
        """The inner items depend on the letter."""
        self.letter = self.input
        self.numbers = list(range(self.index + 1))
        self.next(self.per_number, foreach="numbers")

    @step
    def per_number(self):
        """One (letter, number) pair."""
        self.pair = f"{self.letter}{self.input}"
        self.next(self.join_numbers)

    @step
    def join_numbers(self, inputs):
        """Collect the pairs of one letter."""
        self.pairs = [i.pair for i in inputs]
        # The outer foreach is still open here: self.input is this branch's letter.
        self.letter_again = self.input
        self.merge_artifacts(inputs, include=["letter"])
        self.next(self.join_letters)

    @step
    def join_letters(self, inputs):
        """Collect every letter's pairs, in order."""
        self.all_pairs = [p for i in inputs for p in i.pairs]
        self.by_letter = {i.letter: i.pairs for i in inputs}
        self.next(self.end)

    @step
    def end(self):
        """Count the pairs."""
        self.count = len(self.all_pairs)


if __name__ == "__main__":
    ForeachFlow()
