"""predict on a dask.distributed cluster: blocks on the tile grid computed by workers, the same map."""

import numpy as np
import pytest
import rasterio
import torch

from lale_geo.inference.cluster import _join_columns, worker_path
from lale_geo.inference.predict import predict
from lale_geo.io.outputs import FinishedRows
from lale_geo.weights import DEFAULT_WEIGHTS
from tests.helpers import LocalModel, card_for

CPU = dict(device="cpu", engine="torch")


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
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        summary = predict(src, tmp_path / "cluster.tif", model=pair, **CPU,
                          scheduler=cluster.scheduler_address, probabilities=tmp_path / "cp.tif")
    assert summary.tiles_computed is None
    report = summary.cluster
    assert (report.workers, report.threads, report.engine) == (2, 2, "torch-cpu") and report.blocks >= 2
    pixels = summary.width * summary.height
    assert report.bytes_received == pixels * (1 + 4)  # uint8 classes + 4 uint8 percentages, no float logits
    with rasterio.open(tmp_path / "local.tif") as a, rasterio.open(tmp_path / "cluster.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert a.transform == b.transform and a.crs == b.crs
    with rasterio.open(tmp_path / "lp.tif") as a, rasterio.open(tmp_path / "cp.tif") as b:
        np.testing.assert_array_equal(a.read(), b.read())
