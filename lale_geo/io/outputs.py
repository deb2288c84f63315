"""The rasters one prediction run writes (class map, optional probabilities and confidence), row band
by row band, published together at the end, with the journal that lets an interrupted run resume."""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import numpy as np
import rasterio
from rasterio.windows import Window

from .. import __version__
from ..errors import RasterIOError
from ..files import is_remote, published, run_tag, temporary_path
from ..weights import WeightsCard
from .raster import gdal_messages
from .scaling import Scaling
from .writers import RasterWriter, row_digest

OUTPUT_NODATA = 255  # the maps' nodata value: distinct from every class id (at most 255 classes)


@dataclass
class FinishedRows:
    """What is written for scene rows: uint8 class ids, and optionally uint8 percent probabilities
    (classes, rows, width) and top-1 confidence; ``OUTPUT_NODATA`` on invalid pixels. This, not float
    logits, is what cluster workers send back (1 byte per pixel for a map)."""

    labels: np.ndarray
    probabilities: np.ndarray | None = None
    confidence: np.ndarray | None = None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.labels, self.probabilities, self.confidence) if a is not None)


def map_tags(resolved, scaling: str, bands, engine: str) -> dict[str, str]:
    """The provenance tags of a class map, whoever writes it (``predict``, or ``segment()`` through its attrs):
    what ``info``, ``vectorize``, ``preview`` and ``stac`` read (class names and colours included, so a map
    written without a colour table still shows its classes)."""
    card = resolved.card
    return {
        "LALE_GEO_VERSION": __version__, "LALE_GEO_MODEL": card.model, "LALE_GEO_WEIGHTS": card.name,
        "LALE_GEO_WEIGHTS_SHA256": card.sha256, "LALE_GEO_TILE_SIZE": str(resolved.tile_size),
        "LALE_GEO_OVERLAP": str(resolved.overlap), "LALE_GEO_BANDS": ",".join(map(str, bands)),
        "LALE_GEO_SCALING": scaling, "LALE_GEO_ENGINE": engine,
        "LALE_GEO_CLASSES": json.dumps(card.class_names),
        "LALE_GEO_COLOURS": json.dumps([list(c.colour) for c in card.classes]),
        "LALE_GEO_UNTRAINED": "yes" if card.training.get("untrained") else "no",
        "LALE_GEO_TTA": resolved.settings.tta,
        "LALE_GEO_PRECISION": resolved.settings.precision,
        "LALE_GEO_SETTINGS": resolved.to_json(),
    }


def colormap(card: WeightsCard) -> dict:
    """The map's colour table: the card's colours, nodata transparent."""
    table = {c.id: (*c.colour, 255) for c in card.classes}
    table[OUTPUT_NODATA] = (0, 0, 0, 0)
    return table


class _WriterOptions(TypedDict):
    """What every raster of one run is opened with (see :class:`RasterWriter`)."""

    key: str
    resume: bool
    overwrite: bool


class MapOutputs:
    """The class map and the optional probability and confidence rasters of one run, written row band
    by row band (uint8; percent for probabilities; 255 = nodata) and published together."""

    def __init__(self, scene, card: WeightsCard, tags: dict, dst, probabilities=None, confidence=None, *,
                 key: str | None = None, resume: bool = False, overwrite: bool = True) -> None:
        profile = {"width": scene.width, "height": scene.height, "crs": scene.crs, "transform": scene.transform,
                   "dtype": "uint8", "nodata": OUTPUT_NODATA}
        gcps, gcp_crs = scene.gcps
        if gcps and scene.crs is None:  # georeferenced by control points only: the map keeps them
            profile.update(crs=gcp_crs, gcps=gcps)
            del profile["transform"]
        self.counts = np.zeros(256, np.int64)
        self.rows_done, self.height = 0, scene.height
        paths = [Path(p) for p in (dst, probabilities, confidence) if p]
        self.journal = Path(dst).with_name(f".{Path(dst).name}.{key}.journal.json") if key else None
        state = self._resumable_state(paths) if resume else None
        if state:
            self.rows_done, self.counts = state["rows_done"], np.asarray(state["counts"], np.int64)
        # A temporary name unique to this run (kept by its journal for a resume): two runs never share one.
        self.tag = state["tag"] if state else run_tag()
        self.key = key
        self._side_files: list[Path] = []
        # a resumed run keeps what this run's key made (the journal, column maps); other leftovers go
        remove_stale_files(paths, keep={self.journal and self.journal.name} | {
            temporary_path(p, self.tag).name for p in paths}, keep_key=key if resume else None)
        self._writer_options = _WriterOptions(key=self.tag, resume=bool(state), overwrite=overwrite)
        self.writers: list[RasterWriter] = []
        self.classes = self._open(dst, dict(profile, count=1), colormap=colormap(card), tags=tags,
                                  band_descriptions=["land cover class"])
        percent_tags = dict(tags, LALE_GEO_UNITS="percent")
        self.probabilities = probabilities and self._open(
            probabilities, dict(profile, count=card.num_classes), tags=percent_tags,
            band_descriptions=card.class_names, overview_resampling="AVERAGE")
        self.confidence = confidence and self._open(
            confidence, dict(profile, count=1), tags=percent_tags, band_descriptions=["top-1 probability"],
            overview_resampling="AVERAGE")
        for writer in self.writers:
            writer.digests = [tuple(d) for d in state["digests"][str(writer.path)]] if state else []

    def side_path(self, name: str) -> Path:
        """A hidden file of this run beside the map (e.g. a temporary column map), named by the run's key so
        that a resumed run finds it; removed when the outputs are committed or aborted, kept on interrupt."""
        path = self.classes.path.with_name(f".{self.classes.path.name}.{self.key}.{name}")
        self._side_files.append(path)
        return path

    def _resumable_state(self, paths: list[Path]) -> dict | None:
        """The journal of the interrupted run, if its partial files are all there and hold exactly the
        rows it lists (checksum per row band); otherwise None, with a warning: the run starts over."""
        if not (self.journal and self.journal.exists()):
            return None
        try:
            state = json.loads(self.journal.read_text())
            intact = state["rows_done"] > 0 and all(
                partial_matches(temporary_path(p, state["tag"]), state["digests"][str(p)]) for p in paths)
        except (ValueError, KeyError, TypeError):
            intact = False
        if not intact:
            warnings.warn(f"{paths[0]}: the partial output of the interrupted run is missing or does not match "
                          "its journal; starting over", stacklevel=3)
            return None
        return state

    def _open(self, path, profile, **kwargs) -> RasterWriter:
        try:
            writer = RasterWriter(path, profile, **kwargs, **self._writer_options)
        except BaseException:
            self.abort()
            raise
        self.writers.append(writer)
        return writer

    def write_finished(self, y0: int, rows: FinishedRows) -> None:
        """Write rows turned into classes (and percentages) from ``y0`` on (here, on a cluster worker, or in a
        column map). Rows written before an interruption are skipped, also when a resumed run's bands start
        above them."""
        height = rows.labels.shape[0]
        if y0 + height <= self.rows_done:
            return
        if y0 < self.rows_done:  # a band that straddles the resume point: keep only its new rows
            cut = self.rows_done - y0
            rows = FinishedRows(rows.labels[cut:], None if rows.probabilities is None else rows.probabilities[:, cut:],
                                None if rows.confidence is None else rows.confidence[cut:])
            y0 = self.rows_done
        self.counts += class_counts(rows.labels)
        self.classes.write_rows(y0, rows.labels)
        if self.probabilities:
            assert rows.probabilities is not None  # runs that write probabilities compute them
            self.probabilities.write_rows(y0, rows.probabilities)
        if self.confidence:
            assert rows.confidence is not None  # runs that write confidence compute it
            self.confidence.write_rows(y0, rows.confidence)
        self.rows_done = y0 + rows.labels.shape[0]
        if self.journal:  # after the rows are on disk: a kill between the two only repeats this band
            self._write_journal()

    def _write_journal(self) -> None:
        assert self.journal is not None  # only runs with a key keep a journal
        state = {"rows_done": self.rows_done, "counts": self.counts.tolist(), "tag": self.tag,
                 "digests": {str(w.path): w.digests for w in self.writers}}
        try:
            with published(self.journal, overwrite=True) as tmp:
                tmp.write_text(json.dumps(state))
        except OSError as e:
            raise RasterIOError(f"{self.journal}: cannot write the resume journal ({e.strerror or e})") from None

    def commit(self) -> None:
        if self.rows_done != self.height:  # a bug, never a user error: refuse to publish a partial map
            raise RasterIOError(f"{self.classes.path}: only rows 0-{self.rows_done} of {self.height} were written; "
                                "nothing was published")
        for writer in self.writers:
            writer.commit()
        self._remove_own_files()

    def abort(self) -> None:
        for writer in self.writers:
            writer.abort()
        self._remove_own_files()

    def _remove_own_files(self) -> None:
        for path in [self.journal, *self._side_files]:
            if path:
                path.unlink(missing_ok=True)


def class_counts(labels: np.ndarray, chunk: int = 1 << 20) -> np.ndarray:
    """Pixels per value (256 bins) of uint8 labels, a million at a time: ``np.bincount`` casts its input
    to int64, 8 bytes per pixel (134 MB for a band of 800 x 20,000 px)."""
    flat = labels.reshape(-1)
    counts = np.zeros(256, np.int64)
    for start in range(0, flat.size, chunk):
        counts += np.bincount(flat[start:start + chunk], minlength=256)
    return counts


def partial_matches(path: Path, digests) -> bool:
    """Whether the partial file ``path`` exists and holds the row bands with these checksums."""
    if not path.exists():
        return False
    try:
        with gdal_messages() as gdal, rasterio.open(path) as src:
            same = all(row_digest(src.read(window=Window(0, y0, src.width, rows))) == digest
                       for y0, rows, digest in digests)
        return same and not gdal.errors
    except (rasterio.errors.RasterioError, OSError):
        return False


def remove_stale_files(outputs, keep: set, keep_key: str | None = None) -> None:
    """Remove partial files and journals that earlier runs of these outputs left (killed, or resumed with
    other parameters) and that this run will not use: it holds the outputs' locks, so no run owns them.
    ``keep_key``: a resumed run's key, whose column maps are kept."""
    for out in outputs:
        # a partial map, its COG copy, its overview files and their VRT (.ovrN, .vrt: rebuilt by any run
        # that resumes), journals, and temporary column maps (finished or in progress)
        stale = re.compile(rf"\.{re.escape(out.name)}\.(?:[0-9a-f-]+(?:\.cog)?\.part{re.escape(out.suffix)}"
                           rf"(?:\.ovr\d+|\.vrt)?|[0-9a-f]{{16}}\.journal\.json(?:\.[0-9a-f-]+\.part\.json)?"
                           rf"|(?P<key>[0-9a-f]{{16}})\.columns\d+-\d+\.tif(?P<part>\.part)?)")
        for path in out.parent.iterdir():
            match = stale.fullmatch(path.name)
            if not match or path.name in keep:
                continue
            if keep_key and match["key"] == keep_key and not match["part"]:
                continue  # a finished column map of the run being resumed
            path.unlink(missing_ok=True)


def run_key(src, card: WeightsCard, settings_json: str, bands, scaling: Scaling, engine: str, outputs) -> str:
    """Digest of everything that decides the output: a journal only resumes the same run."""
    # A local input is identified by its size and time too; a remote one only by its address (so
    # predict refuses resume for it: a changed remote file would not be noticed).
    stat = None if is_remote(src) else os.stat(src)
    source = [src] if stat is None else [str(Path(src).resolve()), stat.st_size, stat.st_mtime_ns]
    parts = [*source, card.sha256, settings_json, list(bands), scaling.describe(), engine,
             [str(Path(p).resolve()) for p in outputs]]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]
