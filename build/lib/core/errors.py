"""The one error type whose message is meant for the person using the tool."""


class UserError(Exception):
    """Bad input or an unmet precondition, explained in one sentence; the app shows it, the CLI prints it."""
