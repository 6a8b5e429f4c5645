"""Exception types. Each message names the input and says what to do."""


class StreamError(Exception):
    """Base of every error this package raises on purpose."""


class InputError(StreamError):
    """A user-supplied file or value cannot be used (missing, wrong format, corrupt)."""


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
