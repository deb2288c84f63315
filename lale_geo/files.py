"""Fault-safe files, for every output of the package (maps, vectors, STAC items, journals, checkpoints,
ONNX exports): checked before any work, written under a hidden temporary name beside the target, published in
one step (never replacing what the run does not own), and locked for one run at a time."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeGuard

from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError

from .errors import InvalidInputError, LaleGeoError, OutputExistsError, OutputLockedError, RasterIOError, message_line

__all__ = ["REMOTE_PREFIXES", "check_output", "is_remote", "lock_path", "locked_outputs", "publish", "published",
           "remove_quietly", "temporary_path", "write_error_line"]


REMOTE_PREFIXES = ("http://", "https://", "s3://", "gs://", "az://", "/vsi")


def is_remote(path: str | Path) -> TypeGuard[str]:
    """A URL or GDAL virtual path (``https://…/scene.tif``, ``s3://…``, ``/vsizip/…``): read through GDAL,
    never a local file (and never a ``Path``, which would fold the ``//`` of a URL)."""
    return isinstance(path, str) and path.startswith(REMOTE_PREFIXES)


def check_output(path: str | Path, overwrite: bool, inputs: Sequence[str | Path] = ()) -> Path:
    """Refuse an output that equals an input, sits in a missing/unwritable folder, or exists already."""
    path = Path(path)
    if any(path.resolve() == Path(other).resolve() for other in inputs if not is_remote(other)):
        raise InvalidInputError(f"{path}: output is the input file; choose another output path")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise InvalidInputError(f"{path}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise InvalidInputError(f"{path}: output folder {folder} is not writable")
    if path.exists() and not overwrite:
        raise OutputExistsError(f"{path}: exists; pass overwrite=True to replace it")
    _probe_folder(path)
    return path


def _probe_folder(path: Path) -> None:
    """Create and remove a file beside ``path``: the only sure test that files can be made there (a folder
    may be writable by its mode yet refuse files, e.g. /proc, a read-only mount), before any work."""
    probe = temporary_path(path, f"{run_tag()}.probe")
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as e:
        raise InvalidInputError(f"{path}: cannot create files in {path.parent} ({e.strerror or e})") from None
    os.unlink(probe)


def run_tag() -> str:
    """A tag unique to this run (process id and a random part) for the names of its temporary files."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


def temporary_path(final: str | Path, tag: str | None = None) -> Path:
    """A hidden name beside ``final`` for its file in progress, unique to this run unless ``tag`` (a
    digest of a resumable run's parameters) is given; it keeps ``final``'s suffix so that drivers
    chosen by extension still work."""
    final = Path(final)
    tag = tag or run_tag()
    return final.with_name(f".{final.name}.{tag}.part{final.suffix}")


def publish(tmp: str | Path, final: str | Path, overwrite: bool) -> Path:
    """Move the finished ``tmp`` to ``final`` in one step. Without ``overwrite`` an existing ``final``
    (even one created while this run was working) is never replaced: the temporary file is linked
    under the final name, which fails if that name exists."""
    tmp, final = Path(tmp), Path(final)
    if overwrite:
        os.replace(tmp, final)
        return final
    try:
        os.link(tmp, final)
    except FileExistsError:
        tmp.unlink(missing_ok=True)
        raise OutputExistsError(f"{final}: was created by something else while this run worked; "
                                "nothing was replaced (pass overwrite=True to replace it)") from None
    except OSError:  # a file system without hard links: check, then rename (a small race remains)
        if final.exists():
            tmp.unlink(missing_ok=True)
            raise OutputExistsError(f"{final}: exists; pass overwrite=True to replace it") from None
        os.replace(tmp, final)
        return final
    tmp.unlink()
    return final


def lock_path(final: str | Path) -> Path:
    """The hidden lock file beside ``final`` that a run writing ``final`` holds."""
    final = Path(final)
    return final.with_name(f".{final.name}.lock")


def _lock(final: Path) -> int:
    """Take the lock of ``final`` (an exclusive ``flock``, released by the OS if the process dies) and
    write this process's pid into it; fail at once, naming the holder, if another run has it."""
    path = lock_path(final)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RasterIOError(f"{final}: cannot create the lock file {path.name} ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputLockedError(f"{final}: another run (pid {owner}) is writing this output; wait for it "
                                    "to end or choose another output") from None
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        os.close(fd)  # a run that just ended removed this file: lock the one now under the name
    with contextlib.suppress(OSError):  # the pid only improves the message of a losing run
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


@contextlib.contextmanager
def locked_outputs(paths: Sequence[str | Path]) -> Iterator[None]:
    """Hold the lock of every output in ``paths`` for the block: a second run to one of them fails at once
    in one line (:class:`OutputLockedError`) instead of sharing its files."""
    held: list[tuple[Path, int]] = []
    try:
        for path in paths:
            held.append((Path(path), _lock(Path(path))))
        yield
    finally:
        for path, fd in reversed(held):
            lock_path(path).unlink(missing_ok=True)  # before the unlock: a waiting run re-checks the name
            os.close(fd)


@contextlib.contextmanager
def published(final: str | Path, overwrite: bool = False, tag: str | None = None,
              errors: tuple[type[BaseException], ...] = ()) -> Iterator[Path]:
    """Context manager for a whole-file output: yields a temporary path to write, publishes it to
    ``final`` when the block ends without error, removes it otherwise (temporary files beside it that
    its writer made too, such as SQLite's journal of a GeoPackage).

    Args:
        final: the output path.
        overwrite: replace an existing ``final`` (only at the very end).
        tag: the temporary name's tag (default: unique to this run).
        errors: more exception types that mean "the write failed" (e.g. pyogrio's); with OSError and
            GDAL's errors they end in one :class:`RasterIOError` naming ``final`` and the cause.

    Example:
        >>> with published("item.json", overwrite=False) as tmp:
        ...     tmp.write_text(text)
    """
    tmp = temporary_path(final, tag)
    try:
        try:
            yield tmp
        except LaleGeoError:
            raise
        except (RasterioError, CPLE_BaseError, OSError, *errors) as e:
            # GDAL's logged errors are not collected here (that is fatal_write_errors' job, for callers
            # that write with GDAL): a journal written beside a reading thread must not catch its messages.
            raise RasterIOError(f"{final}: writing failed ({write_error_line(str(e)) or type(e).__name__}); "
                                "nothing was published") from None
        publish(tmp, final, overwrite)
    finally:
        remove_quietly(tmp, *(tmp.with_name(tmp.name + side) for side in ("-journal", "-wal", "-shm")))


def remove_quietly(*paths: Path) -> None:
    """Remove temporary files; one that cannot be removed must not hide the error that ended the run."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def write_error_line(text: str) -> str:
    """The first line of a write error (an SQL error quotes its whole statement: that part goes)."""
    return message_line(re.sub(r"sqlite3_exec\(.*\) failed: ", "SQLite: ", text), empty="")
