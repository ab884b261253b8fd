"""User-facing errors.

Every mistake a user can make (a missing file, an unreadable image, a wrong checkpoint) is raised as
an :class:`UnfoldLDMError` whose message names the problem and says what to do. Front ends catch this
one class and show its message; anything else is a bug.
"""

from __future__ import annotations


class UnfoldLDMError(Exception):
    """Base class for errors caused by user input, with a message meant for people."""


class InputImageError(UnfoldLDMError, ValueError):
    """An input image is missing, unreadable, empty, too large or holds invalid values."""


class CheckpointError(UnfoldLDMError, ValueError):
    """A checkpoint file is missing, not safetensors, truncated, or does not match its config."""


class NoDefaultWeightsError(CheckpointError):
    """No model was given and no bundled default weights are installed for the task."""


class RestorationInterrupted(UnfoldLDMError):
    """The caller asked the restoration to stop (for example ComfyUI's cancel button)."""
