"""Exceptions raised by lale_geo.

Every error derives from :class:`LaleGeoError`, so callers can catch ours in one clause; each subclass
also inherits the matching builtin, so ``except ValueError`` keeps working for code that expects it.
The CLI turns these into one-line messages (exit code 1).
"""

from __future__ import annotations


class LaleGeoError(Exception):
    """Root of every error raised by lale_geo."""


class UnknownModelError(LaleGeoError, ValueError):
    """A model name that is not in the registry."""


class InvalidInputError(LaleGeoError, ValueError):
    """Input data that cannot be used as given (shape, bands, values)."""


class WeightsError(LaleGeoError, ValueError):
    """Weights or their card are missing, inconsistent or fail their checksum."""


class DatasetError(LaleGeoError, ValueError):
    """A training/evaluation dataset that cannot be read as laid out."""


class RasterIOError(LaleGeoError, OSError):
    """A raster that cannot be opened, read or written."""


class OutputExistsError(LaleGeoError, FileExistsError):
    """The output exists and ``overwrite`` was not given."""


class OutputLockedError(LaleGeoError, OSError):
    """Another run holds the lock of the output (it is writing the same file)."""


def message_line(message: BaseException | str, last: bool = False, limit: int = 200, empty: str = "no message") -> str:
    """One line of a foreign message for our one-line errors: the first non-empty line, or with ``last`` the
    last (some libraries end with the reason after lines of source locations); past ``limit`` characters
    its middle is cut out (the reason is often at the end); ``empty`` for an empty message."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    line = (lines[-1] if last else lines[0]) if lines else empty
    return line if len(line) <= limit else f"{line[:limit // 3]} ... {line[-(limit - limit // 3):]}"
