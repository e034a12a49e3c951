"""Parameters of every type, a callable default and an included file."""

from batchwright import FlowSpec, IncludeFile, JSONType, Parameter, step


def default_label(context):
    """A default computed when the run starts."""
    return f"label-for-{context.flow_name}"


class ParametersFlow(FlowSpec):
    """Echo every parameter into artifacts so a test can check the conversions."""

    name_param = Parameter("name", help="who to greet", default="world")
    count = Parameter("count", help="an integer", default=2)
    ratio = Parameter("ratio", help="a float", type=float, default=0.5)
    verbose = Parameter("verbose", help="a flag", type=bool, default=False)
    config = Parameter("config", help="JSON settings", type=JSONType, default='{"depth": 1}')
    label = Parameter("label", help="computed default", default=default_label)
    token = Parameter("token", help="must be given", required=True)
    notes = IncludeFile("notes", help="a text file", default=None)

    @step
    def start(self):
        """Copy the parameters into artifacts (parameters are read-only)."""
        self.echo = {
            "name": self.name_param,
            "count": self.count,
            "ratio": self.ratio,
            "verbose": self.verbose,
            "config": self.config,
            "label": self.label,
            "token": self.token,
            "notes": self.notes,
        }
        self.next(self.end)

    @step
    def end(self):
        """Parameters are visible in every step."""
        self.doubled = self.count * 2


if __name__ == "__main__":
    ParametersFlow()
