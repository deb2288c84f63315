"""A dask cluster that cannot be reached or goes away mid-run ends in one line with nothing published; a
worker that dies has its blocks retried by Dask and the map is the local run's; a damaged block that a
worker reads is named in one line, as in a local run."""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest
import rasterio

from lale_geo.errors import LaleGeoError
from lale_geo.inference.predict import predict
from tests.faults.common import snapshot, write_scene
from tests.helpers import LocalModel, card_for

distributed = pytest.importorskip("distributed")
pytestmark = pytest.mark.cluster
CPU = {"device": "cpu", "engine": "torch"}
MODEL = (LocalModel(3), card_for(3, 64, 16))


@pytest.mark.parametrize("address", ["localhost", "tcp://127.0.0.1:1", "not an address"])
def test_an_unreachable_or_malformed_scheduler_is_one_line(tmp_path, address):
    src = write_scene(tmp_path / "scene.tif", 128)
    before = snapshot(tmp_path)
    with pytest.raises(LaleGeoError) as error:
        predict(src, tmp_path / "map.tif", model=MODEL, scheduler=address, **CPU)
    assert "\n" not in str(error.value) and str(error.value).startswith(f"{address}: cannot reach")
    assert snapshot(tmp_path) == before


class AfterFirstRows:
    """A progress hook that does ``action`` once, at the first progress (workers' first batches, relayed in
    the thread that runs the blocks): a fault at a point the test controls."""

    def __init__(self, action) -> None:
        self.action, self.done = action, False

    def start(self, tiles: int) -> None:
        pass

    def advance(self, tiles: int) -> None:
        if not self.done:
            self.done = True
            self.action()


def test_a_scheduler_that_dies_mid_run_is_one_line_and_publishes_nothing(tmp_path):
    src = write_scene(tmp_path / "scene.tif", 1024, tiled=True, blockxsize=256, blockysize=256)
    before = snapshot(tmp_path)
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None)
    try:
        with pytest.raises(LaleGeoError) as error:
            predict(src, tmp_path / "map.tif", model=MODEL, scheduler=cluster.scheduler_address,
                    progress=AfterFirstRows(cluster.close), **CPU)  # the scheduler dies mid-run
    finally:
        cluster.close()
    message = str(error.value)
    assert "\n" not in message and "the dask cluster failed during the run" in message, message
    assert not (tmp_path / "map.tif").exists()
    assert {k for k in snapshot(tmp_path) if not k.startswith(".")} == set(before)


class DieOnFirstBlock(distributed.WorkerPlugin):
    """A worker plugin: the first worker to start computing a block (of any worker: ``marker`` is created
    atomically) kills itself with SIGKILL, taking that block with it. The fault comes at a point the test
    controls, whatever the timing of the run."""

    idempotent = True

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def transition(self, key, start, finish, **kwargs) -> None:
        name = key[0] if isinstance(key, tuple) else key
        if finish == "executing" and str(name).startswith("compute_block"):
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return  # a block after the first: run it
            os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.slow
def test_a_worker_that_dies_has_its_blocks_retried_and_the_map_is_unchanged(tmp_path):
    import cloudpickle

    src = write_scene(tmp_path / "scene.tif", 1536, tiled=True, blockxsize=256, blockysize=256)
    predict(src, tmp_path / "local.tif", model=MODEL, **CPU)
    marker = tmp_path / "a worker died"
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the plugin travels to the workers
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        client.register_plugin(DieOnFirstBlock(str(marker)))
        predict(src, tmp_path / "cluster.tif", model=MODEL, scheduler=cluster.scheduler_address, **CPU)
    assert marker.exists()  # a worker died with a block in hand, so that block ran again elsewhere
    with rasterio.open(tmp_path / "local.tif") as a, rasterio.open(tmp_path / "cluster.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())


@pytest.mark.parametrize("tile", [5, 15])  # inside, and in the last row and column (the second band's)
def test_a_damaged_block_read_by_a_worker_is_one_line_naming_the_window(tmp_path, tile):
    from tests.faults.test_read_path import assert_one_line_read_error, break_jpeg_tile, jpeg_scene

    src = jpeg_scene(tmp_path / "scene.tif")
    break_jpeg_tile(src, tile)
    before = snapshot(tmp_path)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
    try:
        with pytest.raises(LaleGeoError) as error:
            predict(src, tmp_path / "map.tif", model=MODEL, scheduler=cluster.scheduler_address, **CPU)
    finally:
        cluster.close()
    assert_one_line_read_error(error, src, "row ", "col ", "JPEG")
    assert snapshot(tmp_path) == before
