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
