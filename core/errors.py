"""The errors whose message is meant for the person using the tool (the CLI prints it, never a traceback)."""


class UserError(Exception):
    """Bad input or an unmet precondition, explained in one sentence; the app shows it, the CLI prints it."""


class JobEnded(Exception):
    """A run ended cancelled or crashed and its folder says so already (core.jobs.run_job): the CLI prints message, as
    it is, and exits with code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.message, self.code = message, code
