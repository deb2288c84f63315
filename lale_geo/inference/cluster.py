"""Predict on a ``dask.distributed`` cluster: bands of rows aligned to the tile grid, computed where the
workers are, sent back as finished uint8 rows (never float logits) and written here in row order.

Each worker streams its band from the raster itself as ``predict`` streams a scene (file block rows read
once through the checked reader, tiles cut from a strip, rows finished as they complete; workers need the
input at the same path or URL), creates its engine once per process and weights with the same ``auto``
rule as the CLI, and runs every tile that meets its band with the whole scene's blending weights, so the
map is the one a local run writes. Bands are full-width unless the scene is too wide for one strip.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import LaleGeoError, message_line
from ..io.outputs import FinishedRows
from ..io.raster import open_raster, reading_env
from ..io.scaling import Scale
from ..weights import list_weights
from .engines import ModelAndCard
from .grid import Block, TileGrid, plan_bands
from .settings import InferenceSettings, ResolvedSettings
from .stitching import Band, finish_rows
from .strips import ColumnBlock, StripSource
from .tile_loop import stream_scene

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)
# About the finished rows one block sends back (band heights differ by up to a tile row): blocks are few
# (each seam computes a tile row twice) but a run still has several rounds of them, and the client holds a
# few while it writes them in order.
BLOCK_BYTES = 32 * 2**20
RECONNECT_GRACE_S = 30.0  # how long a run waits for a lost scheduler to come back before it gives up
# One topic for every run (messages carry the run's id): the scheduler keeps the last events of each topic
# it has seen, so a topic per run would grow a long-lived scheduler's memory run after run.
PROGRESS_TOPIC = "lale-geo-progress"


@dataclass(frozen=True)
class BlockJob:
    """What every block task of one run shares (small: the weights travel by name or as one scattered
    object, not in this)."""

    src: str
    grid: TileGrid
    bands: tuple[int, ...]
    scale: Scale
    fill: tuple[float, ...]
    settings: InferenceSettings  # resolved: tiling filled in; weights None when they travel as an object
    probabilities: bool
    confidence: bool
    run_id: str | None = None  # set when the client follows progress: workers log their finished tiles with it


@dataclass
class ClusterReport:
    """What ran where."""

    address: str
    workers: int
    threads: int
    blocks: int
    engine: str
    bytes_received: int

    def describe(self, pixels: int) -> str:
        return (f"{self.engine} on {self.workers} dask worker(s) ({self.threads} thread(s)) at {self.address}, "
                f"{self.blocks} blocks, {self.bytes_received / 1e6:.1f} MB of finished rows received "
                f"({self.bytes_received / max(pixels, 1):.2f} B/px)")


def compute_block(job: BlockJob, block: Block, weights: str | ModelAndCard) -> tuple[FinishedRows, str]:
    """Finished rows of one block (runs on a worker) and the engine's name. The block is streamed as
    ``predict`` streams a scene: its file block rows read once, tiles cut from a strip, rows blended and
    finished as soon as no later tile reaches them, so a tall block holds a few strips, not its logits."""
    pair = ModelAndCard.named(weights) if isinstance(weights, str) else ModelAndCard.of(weights)
    engine = ResolvedSettings(job.settings, pair).create_engine(block=True)
    y, x, h, w = block.region
    top, left, _, width = block.extent  # what the block's tiles read: its rows and columns with the halo
    rows = _BlockRows(h, w, engine.num_classes if job.probabilities else 0, job.confidence)
    with reading_env(), open_raster(job.src) as scene:
        source = StripSource(scene, job.bands, job.fill, first_row=top,
                             columns=ColumnBlock(x, x + w, left, left + width, left, left + width))

        def emit(band: Band) -> None:
            n = band.logits.shape[1]
            valid = source.validity(band.y0, n)  # in order, every band: the source releases what it handed out
            a, b = max(band.y0, y) - band.y0, min(band.y0 + n, y + h) - band.y0  # the band's rows in the block
            if a < b:
                rows.put(band.y0 + a - y, finish_rows(band.logits[:, a:b], valid[a:b], job.probabilities,
                                                      job.confidence))

        stream_scene(source, job.grid, engine, job.scale, job.settings.batch_size, _reporting(emit, job, block),
                     resume_at=y, columns=(x, x + w), until=y + h)
    return rows.finished, engine.name


def _reporting(emit: Callable[[Band], None], job: BlockJob, block: Block) -> Callable[[Band], None]:
    """``emit``, telling the client of each finished tile row (an event, through the scheduler) when it
    follows progress: a block is a band of thousands of tiles, and a bar that moved only when blocks came
    back would stand still for minutes. Only the tiles the block owns count (those whose top-left corner
    lies in its region), so that the tiles two blocks share at a seam count once."""
    try:
        from distributed import get_worker

        worker = get_worker() if job.run_id is not None else None
    except (ImportError, ValueError):  # not on a worker (a block computed in this process)
        worker = None
    if worker is None:
        return emit
    y, x, h, w = block.region
    grid = job.grid
    owned_columns = sum(x <= c < x + w for c in grid.col_origins)

    def emit_and_report(band: Band) -> None:
        emit(band)
        if y <= band.y0 < y + h:  # the band of a tile row starts at the row's origin
            worker.log_event(PROGRESS_TOPIC, [job.run_id, owned_columns])

    return emit_and_report


class _BlockRows:
    """The finished rows of one block, filled band by band."""

    def __init__(self, height: int, width: int, classes: int, confidence: bool) -> None:
        self.finished = FinishedRows(np.empty((height, width), np.uint8),
                                     np.empty((classes, height, width), np.uint8) if classes else None,
                                     np.empty((height, width), np.uint8) if confidence else None)

    def put(self, y0: int, rows: FinishedRows) -> None:
        n = rows.labels.shape[0]
        self.finished.labels[y0:y0 + n] = rows.labels
        if self.finished.probabilities is not None:
            self.finished.probabilities[:, y0:y0 + n] = rows.probabilities
        if self.finished.confidence is not None:
            self.finished.confidence[y0:y0 + n] = rows.confidence


def run_on_cluster(address: str, job: BlockJob, resolved: ResolvedSettings,
                   write: Callable[[int, FinishedRows], None], progress: Callable[[int], None] | None = None,
                   block_bytes: int = BLOCK_BYTES, resume_at: int = 0,
                   connecting: Connection | None = None) -> ClusterReport:
    """Compute every block of ``job.grid`` on the cluster at ``address`` and hand finished rows to
    ``write(y0, rows)`` in row order. At most a few rows of blocks are in flight, so memory stays
    bounded here and on the workers. Block rows that end at or above ``resume_at`` are skipped.
    ``connecting``: the connection started earlier (:class:`Connection`), else one is made here."""
    client = (connecting or Connection(address)).client()
    try:
        with client:
            return _run_blocks(client, address, job, resolved, write, progress, block_bytes, resume_at)
    except (LaleGeoError, KeyboardInterrupt):
        raise
    except Exception as e:  # the scheduler or the connection went away mid-run (workers are retried by Dask)
        raise LaleGeoError(f"{address}: the dask cluster failed during the run ({type(e).__name__}: "
                           f"{message_line(e)}); nothing was published") from None


class Connection:
    """A client for the scheduler at ``address``, connected in a background thread from the moment this is
    made: importing ``distributed`` and connecting (about a second) overlap opening the scene and deciding
    the run. ``client()`` waits for it; ``close()`` lets go of one that was never used."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._client: Client | None = None
        self._error: Exception | None = None
        self._abandoned = False
        threading.Thread(target=self._connect, name="lale-geo-connect", daemon=True).start()

    def _connect(self) -> None:
        try:
            from distributed import Client

            # not the default client: the user's own dask computations must not move onto this cluster
            client = Client(self.address, timeout="20s", set_as_default=False)
        except Exception as e:  # noqa: BLE001 - handed to the caller by client()
            self._error = e
            client = None
        with self._lock:
            self._client = client
            self._done.set()
            if self._abandoned and client is not None:  # the run ended before it needed the cluster
                client.close()

    def client(self):
        self._done.wait()
        if self._error is not None:  # unreachable, not host:port, or the connection failed half-way
            usual = isinstance(self._error, (OSError, TimeoutError, ValueError, TypeError))
            cause = message_line(self._error) if usual else f"{type(self._error).__name__}: {message_line(self._error)}"
            raise LaleGeoError(f"{self.address}: cannot reach the dask scheduler ({cause}); "
                               "give its address as tcp://HOST:PORT") from None
        return self._client

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Let go of the client; one still connecting is closed by its thread (nobody waits for it)."""
        with self._lock:
            self._abandoned = True
            client = self._client if self._done.is_set() else None
        if client is not None:
            client.close()


def _run_blocks(client, address: str, job: BlockJob, resolved: ResolvedSettings,
                write: Callable[[int, FinishedRows], None], progress: Callable[[int], None] | None,
                block_bytes: int, resume_at: int) -> ClusterReport:
    """The blocks of ``job`` on the connected ``client``, a few rows of blocks in flight, written in order."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    threads = sum(w["nthreads"] for w in workers.values()) or 1
    per_pixel = 1 + (resolved.card.num_classes if job.probabilities else 0) + (1 if job.confidence else 0)
    rows = [row for row in plan_bands(job.grid, threads, max(block_bytes // per_pixel, 1))
            if row[0].region[0] + row[0].region[2] > resume_at]
    weights = worker_path(resolved.settings.weights) or client.scatter(resolved.model, broadcast=True)
    relay = _ProgressRelay(client, job, progress, rows)
    job = relay.job
    in_flight = max(2, -(-2 * threads // len(rows[0]))) if rows else 0
    futures: list[list] = []

    def submit(i: int) -> None:
        futures.append([client.submit(compute_block, job, block, weights, priority=-i, pure=False)
                        for block in rows[i]])

    for i in range(min(in_flight, len(rows))):
        submit(i)
    received = 0
    engines: set[str] = set()
    for i, row in enumerate(rows):
        results = [_result(client, f, relay.drain) for f in futures[i]]
        futures[i] = []  # let go of the row's futures
        if i + in_flight < len(rows):
            submit(i + in_flight)
        received += sum(r.nbytes for r, _ in results)
        engines.update(name for _, name in results)
        write(row[0].region[0], _join_columns([r for r, _ in results]))
    relay.close()
    return ClusterReport(address, len(workers), threads, sum(len(r) for r in rows), ", ".join(sorted(engines)),
                         received)


class _ProgressRelay:
    """Workers' tile-row events to ``progress``, capped at the run's tiles (a block retried after a lost worker
    reports its rows twice). Rows skipped by a resumed run are reported at once, and
    whatever the events have not reported when the run ends (events travel apart from results), at the end.
    Events arrive on the client's event loop; ``progress`` is called only from the thread that runs the
    blocks (:meth:`drain`), as it is in a local run (a progress bar, or a hook that stops the run)."""

    def __init__(self, client, job: BlockJob, progress: Callable[[int], None] | None, rows: list[list[Block]]) -> None:
        self.client, self.progress, self.job = client, progress, job
        grid = job.grid
        self.total = len(grid)
        self._events: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._reported = 0
        if progress is None:
            return
        self.job = replace(job, run_id=uuid.uuid4().hex)
        client.subscribe_topic(PROGRESS_TOPIC, self._event)
        # a resumed run skips the blocks above its first one: their tile rows (those whose origin lies above
        # it, by the ownership the workers report with) never arrive as events
        first = rows[0][0].region[0] if rows else grid.height
        self._advance(sum(y < first for y in grid.row_origins) * len(grid.col_origins))

    def _event(self, event) -> None:
        _, (run_id, tiles) = event  # (timestamp, message); other runs on the cluster share the topic
        if run_id == self.job.run_id:
            self._events.put(int(tiles))

    def drain(self) -> None:
        """Report the events received so far."""
        tiles = 0
        while not self._events.empty():
            tiles += self._events.get()
        self._advance(tiles)

    def _advance(self, tiles: int) -> None:
        tiles = min(tiles, self.total - self._reported)
        self._reported += tiles
        if tiles > 0 and self.progress:
            self.progress(tiles)

    def close(self) -> None:
        if self.progress is None:
            return
        with contextlib.suppress(Exception):  # the run is done: a lost subscription is no failure
            self.client.unsubscribe_topic(PROGRESS_TOPIC)
        self._advance(self.total)


def _result(client, future, while_waiting: Callable[[], None] | None = None, grace: float = RECONNECT_GRACE_S):
    """The future's result; a client that stays disconnected (the scheduler gone) for ``grace`` seconds
    ends the wait: Dask would otherwise keep the future pending while it tries to reconnect.
    ``while_waiting`` is called every quarter of a second (and once more at the end) in this thread."""
    # Waited on with an event, not future.result(timeout=...): on a busy machine that timed wait can end in
    # an UnboundLocalError from inside distributed (a cancellation racing the timeout in its sync()).
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    lost_since = None
    while not done.wait(0.25):
        if while_waiting:
            while_waiting()
        if client.status == "running":
            lost_since = None
            continue
        lost_since = lost_since or time.monotonic()
        if client.status in ("closed", "closing") or time.monotonic() - lost_since > grace:
            raise ConnectionError(f"lost the connection to the scheduler (client {client.status})")
    if while_waiting:
        while_waiting()
    return future.result()


def worker_path(weights: str | None) -> str | None:
    """Shipped weights by name; local weights files by absolute path (workers need not share our folder)."""
    if weights is None or weights in list_weights():
        return weights
    return str(Path(weights).resolve())


def _join_columns(parts: list[FinishedRows]) -> FinishedRows:
    """One block row's finished rows, side by side."""

    def join(name: str):
        arrays = [getattr(p, name) for p in parts]
        return None if arrays[0] is None else np.concatenate(arrays, axis=-1)

    return FinishedRows(join("labels"), join("probabilities"), join("confidence"))
