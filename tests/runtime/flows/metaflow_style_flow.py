"""A flow written for Metaflow; the test swaps only the import line for batchwright's.

It uses static branches, a join with merge_artifacts, a foreach, Parameter (several
types) and IncludeFile, the way a Metaflow user writes them.
"""

from metaflow import FlowSpec, IncludeFile, JSONType, Parameter, current, step


class MovieStatsFlow(FlowSpec):
    """Count genres in a small CSV and score them."""

    movie_data = IncludeFile("movie_data", help="CSV of title,genre", default="movies.csv")
    weight = Parameter("weight", help="score weight", type=float, default=1.5)
    top = Parameter("top", help="how many genres to keep", default=2)
    extra = Parameter("extra", help="extra genres", type=JSONType, default="[]")

    @step
    def start(self):
        """Parse the CSV."""
        rows = [line.split(",") for line in self.movie_data.strip().splitlines()[1:]]
        self.genres = sorted({genre for _, genre in rows} | set(self.extra))
        self.rows = rows
        print(f"{current.flow_name} parsed {len(rows)} rows")
        self.next(self.count_titles, self.longest_title)

    @step
    def count_titles(self):
        """Branch 1."""
        self.title_count = len(self.rows)
        self.next(self.combine)

    @step
    def longest_title(self):
        """Branch 2."""
        self.longest = max((title for title, _ in self.rows), key=len)
        self.next(self.combine)

    @step
    def combine(self, inputs):
        """Join the branches."""
        self.title_count = inputs.count_titles.title_count
        self.longest = inputs.longest_title.longest
        self.merge_artifacts(inputs, exclude=["title_count", "longest"])
        self.next(self.score, foreach="genres")

    @step
    def score(self):
        """One task per genre."""
        self.genre = self.input
        matching = sum(1 for _, genre in self.rows if genre == self.genre)
        self.score_value = matching * self.weight
        self.next(self.gather)

    @step
    def gather(self, inputs):
        """Keep the best genres."""
        ranked = sorted(inputs, key=lambda i: (-i.score_value, i.genre))
        self.best = [(i.genre, i.score_value) for i in ranked][: self.top]
        self.merge_artifacts(inputs, include=["title_count", "longest"])
        self.next(self.end)

    @step
    def end(self):
        """Report."""
        print("best", self.best, "of", self.title_count)


if __name__ == "__main__":
    MovieStatsFlow()
