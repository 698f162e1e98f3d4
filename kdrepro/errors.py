"""The one base class of expected failures: bad input, missing or corrupt data, a run not in the
store.

Their messages are one line that says what is wrong and what to do; the CLI prints that line without
a traceback (`--debug` shows it). Anything else is a bug and keeps its traceback.
"""


class KdreproError(Exception):
    """An expected failure whose message is one line that says what to do."""


class ConfigError(KdreproError, ValueError):
    """A config field or command-line argument out of range."""


class TrainingFailed(KdreproError, RuntimeError):
    """The loss diverged, or a student learned nothing; the message says which lr to try."""
