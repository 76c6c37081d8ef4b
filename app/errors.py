"""The one base class for errors whose message is meant for the user (it says what to do)."""


class XiaoerError(RuntimeError):
    """Shown to the user as it is, without a traceback."""
