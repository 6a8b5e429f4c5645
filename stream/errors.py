"""Exception types and the command line's exit codes. Each message names the input and says what to do.

Everything the package raises on purpose is a ``StreamError``; any other exception is a bug and keeps
its traceback (exit status 1).
"""


class StreamError(Exception):
    """Base of every error this package raises on purpose."""


class InputError(StreamError):
    """A user-supplied file or value cannot be used (missing, wrong format, corrupt)."""


class ConfigError(InputError, ValueError):
    """An option or configuration value is out of range, unknown or inconsistent with another.

    Also a ``ValueError``, so code that validated values with ``except ValueError`` keeps working.
    """


class VideoDecodeError(InputError):
    """A video file cannot be opened or decoded."""


class NoFaceError(StreamError):
    """No face was found in any frame of an input."""


class WeightsError(StreamError):
    """Model weights are missing, unreachable, corrupt or of the wrong architecture."""


class CheckpointError(WeightsError):
    """An AU-model checkpoint is missing, untrained or does not match its partner."""


class UnknownSessionError(StreamError, LookupError):
    """No stored live session has this id."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"no stored session {session_id!r}: check the link, or list the sessions with the clinic key")
        self.session_id = session_id


class AnalysisWorkerError(StreamError):
    """An analysis worker process (``serve --analysis-processes``) failed, or died and could not be replaced."""


class AnalysisWorkerDied(AnalysisWorkerError):
    """The worker process analysing a session exited (killed, out of memory, crashed)."""


class AnalysisRestarted(AnalysisWorkerError):
    """A session's analysis moved to a fresh worker after its worker died: tracking and the AU reference
    start afresh. The frame that found the worker dead is not analysed; the next ones are."""


#: The command line's exit status per error family, most specific first: the first row that matches wins.
EXIT_CODES: tuple[tuple[type[StreamError], int], ...] = (
    (NoFaceError, 3),  # the input was read but shows no face
    (InputError, 2),  # a file, an option or a value the user gave (ConfigError, VideoDecodeError included)
    (WeightsError, 2),  # weights or checkpoint missing, corrupt or of the wrong model (CheckpointError included)
    (StreamError, 1),  # any other failure the program names
)


def exit_code(error: StreamError) -> int:
    """The exit status for ``error`` from ``EXIT_CODES``."""
    return next(code for kind, code in EXIT_CODES if isinstance(error, kind))
