"""Error hierarchy shared by every stage of the loop.

Messages always name the offending field, member or repo and say what would fix it.
Candidate-level errors (`CandidateError`) are caught at the candidate boundary: the
candidate is recorded as failed with its reason and the run goes on.
"""


class HubevoError(Exception):
    """Base class for every error hubevo raises on purpose."""


class ConfigError(HubevoError, ValueError):
    """A run config field is invalid; raised before any expensive work starts."""


class CompatibilityError(HubevoError, ValueError):
    """Population members cannot be merged together (architecture, shapes, vocabulary)."""


class MemberNotFoundError(HubevoError, FileNotFoundError):
    """A population member (local path or Hub repo) does not exist or cannot be read."""


class UnknownNameError(HubevoError, KeyError):
    """A registry lookup failed; the message lists the known names."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class CandidateError(HubevoError, RuntimeError):
    """One candidate failed (merge, NaN weights, out of memory, evaluation); the run goes on."""


class HubError(HubevoError, RuntimeError):
    """A Hub call failed; the message names the repo and never contains a token."""


class RunLockedError(HubevoError, RuntimeError):
    """Another process holds the run folder; the message names its PID and host."""


class DiskFullError(HubevoError, OSError):
    """The disk filled up while writing; the message says what was being written and that nothing is half-written."""


class OutputNotWritableError(HubevoError, OSError):
    """A folder hubevo writes to is read-only or forbidden; the message names it and that nothing is half-written."""


class NotARunFolderError(ConfigError):
    """A folder hubevo would write or delete in is not one it made (no run marker); the message names it."""


class StateFileError(HubevoError, ValueError):
    """A run's state file cannot be read; the message names the file and how to recover."""


def is_transient(err: BaseException) -> bool:
    """Whether trying again later may succeed: the Hub or the network failing, the run folder busy,
    memory or disk running out. Config errors, missing or invalid repos and incompatible members are
    permanent: the same input fails the same way until a person changes it."""
    if isinstance(err, (RunLockedError, DiskFullError, MemoryError)) or type(err).__name__ == "OutOfMemoryError":
        return True
    if isinstance(err, HubError):
        return getattr(err, "transient", True)
    if isinstance(err, HubevoError):
        return False
    return isinstance(err, (OSError, TimeoutError))


def describe_error(err: BaseException) -> str:
    """One line for a status page or a log: hubevo's own message, or the type and text of anything else."""
    return str(err) if isinstance(err, HubevoError) else f"{type(err).__name__}: {err}"
