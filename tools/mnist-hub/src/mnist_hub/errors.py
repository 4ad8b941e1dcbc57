"""How a command ends other than in success: a bad invocation (exit 2), or a deploy that stops
(exit 1). Both carry the message a person reads."""


class UsageError(Exception):
    """A bad invocation: exit 2 with this message."""


class DeployError(Exception):
    """The command stops (exit 1), with this message; where nothing was changed, it says so."""


class HelpShown(Exception):  # noqa: N818 - not an error: --help was answered
    """--help was printed: exit 0."""
