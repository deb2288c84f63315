"""predict on a dask.distributed cluster: blocks on the tile grid computed by workers, the same map."""

import numpy as np
import pytest
import rasterio
import torch

from lale_geo.inference import cluster as cluster_module
from lale_geo.inference.cluster import BlockJob, _join_columns, compute_block, worker_path
from lale_geo.inference.domain import scene_scaling
from lale_geo.inference.grid import TileGrid, plan_bands
from lale_geo.inference.predict import predict
from lale_geo.inference.settings import InferenceSettings
from lale_geo.io.outputs import FinishedRows
from lale_geo.io.raster import select_bands
from lale_geo.weights import DEFAULT_WEIGHTS
from tests.helpers import LocalModel, card_for

CPU = dict(device="cpu", engine="torch")


class CountingProgress:
    def __init__(self) -> None:
        self.started: list[int] = []
        self.advanced: list[int] = []

    def start(self, tiles: int) -> None:
        self.started.append(tiles)

    def advance(self, tiles: int) -> None:
        self.advanced.append(tiles)


def test_workers_get_shipped_weights_by_name_and_local_files_by_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert worker_path(None) is None and worker_path(DEFAULT_WEIGHTS) == DEFAULT_WEIGHTS
    assert worker_path("mine.safetensors") == str(tmp_path / "mine.safetensors")


def test_a_block_rows_columns_are_joined_side_by_side_with_their_side_outputs():
    left = FinishedRows(np.zeros((2, 3), np.uint8), None, np.full((2, 3), 90, np.uint8))
    right = FinishedRows(np.ones((2, 4), np.uint8), None, np.full((2, 4), 80, np.uint8))
    joined = _join_columns([left, right])
    assert joined.probabilities is None
    np.testing.assert_array_equal(joined.labels, [[0, 0, 0, 1, 1, 1, 1]] * 2)
    np.testing.assert_array_equal(joined.confidence, [[90] * 3 + [80] * 4] * 2)


def test_streamed_bands_and_column_blocks_join_into_the_local_map(rasterio_fixtures, tmp_path):
    """Each block streams its rows (resuming the grid at its top, stopping below its bottom) and its columns;
    side by side they give the local run's map, masked pixels, probabilities and confidence included."""
    src = rasterio_fixtures / "RGBA.byte.tif"
    pair = (LocalModel(4, radius=1), card_for(4, 128, 32))
    predict(src, tmp_path / "local.tif", model=pair, **CPU, probabilities=tmp_path / "lp.tif",
            confidence=tmp_path / "lc.tif")
    resolved = InferenceSettings(**CPU).resolve(pair)
    card = resolved.card
    with rasterio.open(src) as scene:
        bands = select_bands(scene, card.bands, None)
        scale = scene_scaling(card, scene, bands, None, False, str(src))[0].scale
        grid = TileGrid(scene.height, scene.width, resolved.tile_size, resolved.overlap)
    job = BlockJob(str(src), grid, tuple(bands), scale, tuple(scale.fill(card.mean)), resolved.settings, True, True)
    plan = plan_bands(grid, parallelism=3, max_pixels=60_000, max_columns=300)
    assert len(plan) >= 3 and len(plan[0]) >= 2  # seams across rows and across columns
    rows = [_join_columns([compute_block(job, block, resolved.model)[0] for block in row]) for row in plan]
    with rasterio.open(tmp_path / "local.tif") as a, rasterio.open(tmp_path / "lp.tif") as p, \
            rasterio.open(tmp_path / "lc.tif") as c:
        np.testing.assert_array_equal(np.concatenate([r.labels for r in rows]), a.read(1))
        assert (a.read(1) == 255).any()  # the alpha mask reached the blocks
        np.testing.assert_array_equal(np.concatenate([r.probabilities for r in rows], axis=1), p.read())
        np.testing.assert_array_equal(np.concatenate([r.confidence for r in rows]), c.read(1))


@pytest.mark.slow
def test_predict_on_a_local_cluster_equals_the_local_run(rasterio_fixtures, tmp_path):
    distributed = pytest.importorskip("distributed")
    src = rasterio_fixtures / "RGBA.byte.tif"  # alpha mask must travel to the workers too
    pair = (LocalModel(4, radius=1), card_for(4, 128, 32))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each single-threaded worker: float sums then add up in the same order
    try:
        predict(src, tmp_path / "local.tif", model=pair, **CPU, probabilities=tmp_path / "lp.tif")
    finally:
        torch.set_num_threads(threads)
    progress = CountingProgress()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        summary = predict(src, tmp_path / "cluster.tif", model=pair, **CPU, progress=progress,
                          scheduler=cluster.scheduler_address, probabilities=tmp_path / "cp.tif", batch_size=2)
        with distributed.Client(cluster) as client:  # what the workers told the scheduler, batch by batch
            rows = client.get_events(cluster_module.PROGRESS_TOPIC)
    assert summary.tiles_computed is None
    report = summary.cluster
    # the workers reported each tile row they own, not each block: the tiles two bands share at their seam
    # count once, so the events alone add up to the run's tiles (the bar's final top-up adds nothing)
    grid = TileGrid(summary.height, summary.width, 128, 32)
    assert progress.started == [summary.tiles] and sum(progress.advanced) == summary.tiles
    assert len(rows) == len(grid.row_origins) and {run for _, (run, _) in rows} == {rows[0][1][0]}
    assert [tiles for _, (_, tiles) in rows] == [len(grid.col_origins)] * len(rows)
    assert (report.workers, report.threads, report.engine) == (2, 2, "torch-cpu") and report.blocks >= 2
    pixels = summary.width * summary.height
    assert report.bytes_received == pixels * (1 + 4)  # uint8 classes + 4 uint8 percentages, no float logits
    with rasterio.open(tmp_path / "local.tif") as a, rasterio.open(tmp_path / "cluster.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert a.transform == b.transform and a.crs == b.crs
    with rasterio.open(tmp_path / "lp.tif") as a, rasterio.open(tmp_path / "cp.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_the_progress_relay_reports_in_the_callers_thread_and_never_past_the_total():
    """Events arrive on the client's loop; the bar hears of them only when the waiting thread drains them,
    never more than the run's tiles (seam tiles and retried blocks report twice), and the rest at the end."""

    class FakeClient:
        def subscribe_topic(self, topic, handler):
            self.topic, self.handler = topic, handler

        def unsubscribe_topic(self, topic):
            assert topic == self.topic
            self.handler = None

        def event(self, run_id, tiles):
            self.handler((0.0, [run_id, tiles]))

    grid = TileGrid(1000, 600, 256, 64)  # 5 x 3 tiles
    job = BlockJob("scene.tif", grid, (1, 2, 3), None, (0.0,) * 3, InferenceSettings(), False, False)
    client, reported = FakeClient(), []
    relay = cluster_module._ProgressRelay(client, job, reported.append, plan_bands(grid, 2))
    run = relay.job.run_id
    assert client.topic == cluster_module.PROGRESS_TOPIC and run and reported == []  # a fresh run skipped nothing
    client.event(run, 4)
    client.event("another run on the cluster", 3)
    client.event(run, 4)
    assert reported == []  # not from the event loop's thread
    relay.drain()
    client.event(run, 10)  # a block retried after a lost worker: 18 reported for a grid of 15
    relay.drain()
    assert reported == [8, 7]
    relay.close()
    assert sum(reported) == len(grid) == 15 and client.handler is None


def test_a_resumed_cluster_run_reports_the_rows_it_skips():
    class FakeClient:
        def subscribe_topic(self, topic, handler):
            pass

    grid = TileGrid(1000, 600, 256, 64)
    job = BlockJob("scene.tif", grid, (1, 2, 3), None, (0.0,) * 3, InferenceSettings(), False, False)
    bands = plan_bands(grid, 2)
    reported = []
    cluster_module._ProgressRelay(FakeClient(), job, reported.append, bands[1:])  # the first band was written
    # the tile rows the first band owns (their origin in its rows): the second band reports the others
    owned = sum(bands[0][0].region[0] <= y < bands[1][0].region[0] for y in grid.row_origins)
    assert owned >= 1 and reported == [owned * len(grid.col_origins)]
