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
