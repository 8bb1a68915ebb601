"""The errors of the media package, the ``film`` logger, and notices given once."""
from __future__ import annotations

import logging
from typing import Set

log = logging.getLogger("film")


class MediaError(Exception):
    """A problem with an input or output file, described in one line for the user."""


class ImageReadError(MediaError, ValueError):
    """An input image is missing, unreadable or not an image."""


class OutputError(MediaError, OSError):
    """The output cannot be written where it was asked for."""


_notices_given: Set[str] = set()


def notice_once(message: str) -> None:
    """A warning on the ``film`` logger, given once per process."""
    # A long run (e.g. over a video's frames) should not repeat the same notice.
    if message not in _notices_given:
        _notices_given.add(message)
        log.warning(message)


def first_line(text_or_error) -> str:
    """The first line of a message (an exception's, or its type's name when it has none): for one-line errors."""
    text = str(text_or_error).strip()
    if text:
        return text.splitlines()[0]
    return type(text_or_error).__name__ if isinstance(text_or_error, BaseException) else ""


def describe_av_error(error: BaseException) -> str:
    """The first line of what PyAV / FFmpeg says about ``error``."""
    return first_line(getattr(error, "strerror", None) or error)
