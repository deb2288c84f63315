"""Scenes as one file per band (Sentinel-2, Landsat) and STAC items: stacked on the finest band's grid into a
VRT read like any scene; the map equals that of the same bands stacked in one file."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin

from lale_geo.cli.main import cli
from lale_geo.errors import InvalidInputError
from lale_geo.inference.predict import predict
from lale_geo.io.band_files import item_band_files, stack_vrt
from tests.helpers import LocalModel, card_for, serve_folder

MODEL = (LocalModel(3), card_for(3, 64, 16))
H, W = 150, 170
CPU = {"device": "cpu", "engine": "torch"}


def band_file(path, pixels, pixel_size=10.0, crs="EPSG:32618", dtype="uint8"):
    with rasterio.open(path, "w", driver="GTiff", height=pixels.shape[0], width=pixels.shape[1], count=1, dtype=dtype,
                       crs=crs, transform=from_origin(600000, 5000000, pixel_size, pixel_size)) as dst:
        dst.write(pixels.astype(dtype), 1)
    return path


def bands(folder):
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 255, (3, H, W))
    files = [band_file(folder / f"B0{4 - i}.tif", pixels[i]) for i in range(3)]  # B04 red, B03 green, B02 blue
    return files, pixels


def stacked(folder, pixels):
    with rasterio.open(folder / "stack.tif", "w", driver="GTiff", height=H, width=W, count=3, dtype="uint8",
                       crs="EPSG:32618", transform=from_origin(600000, 5000000, 10, 10), photometric="RGB") as dst:
        dst.write(pixels.astype("uint8"))
    return folder / "stack.tif"


def labels(path):
    with rasterio.open(path) as src:
        return src.read(1), src.transform, src.crs


def item(folder, hrefs, common=True, collection=False):
    assets = {key: {"href": href, "type": "image/tiff; application=geotiff",
                    **({"eo:bands": [{"name": key, "common_name": name}]} if common else {})}
              for key, href, name in zip(("B04", "B03", "B02"), hrefs, ("red", "green", "blue"))}
    document = {"type": "Feature", "stac_version": "1.0.0", "id": "scene", "geometry": None, "properties": {},
                "assets": assets, "links": []}
    if collection:
        document = {"type": "FeatureCollection", "features": [document]}
    (folder / "item.json").write_text(json.dumps(document))
    return folder / "item.json"


def test_band_files_give_the_map_of_the_stacked_scene(tmp_path):
    files, pixels = bands(tmp_path)
    predict(stacked(tmp_path, pixels), tmp_path / "one_file.tif", model=MODEL, **CPU)
    predict(files, tmp_path / "band_files.tif", model=MODEL, **CPU)
    a, b = labels(tmp_path / "one_file.tif"), labels(tmp_path / "band_files.tif")
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1:] == b[1:]
    assert not list(tmp_path.glob(".*"))  # the VRT beside the output is gone


def test_a_coarser_band_is_resampled_onto_the_finest_grid(tmp_path):
    rng = np.random.default_rng(6)
    red = band_file(tmp_path / "red.tif", rng.integers(0, 255, (100, 120)))
    coarse = band_file(tmp_path / "nir.tif", rng.integers(0, 255, (50, 60)), pixel_size=20.0)
    with rasterio.open(stack_vrt([red, coarse], ["red", "nir"])) as vrt:
        assert (vrt.width, vrt.height, vrt.res) == (120, 100, (10.0, 10.0))
        assert vrt.colorinterp[0] == ColorInterp.red
        with rasterio.open(red) as r:
            np.testing.assert_array_equal(vrt.read(1), r.read(1))
        with rasterio.open(coarse) as c:
            # every 10 m pixel lies inside a 20 m pixel: bilinear resampling stays within its neighbours
            up = vrt.read(2).astype(int)
            source = c.read(1).astype(int)
            assert up.shape == (100, 120) and source.min() <= up.min() and up.max() <= source.max()


def test_a_stac_item_picks_its_bands_by_common_name(tmp_path):
    files, pixels = bands(tmp_path)
    predict(stacked(tmp_path, pixels), tmp_path / "one_file.tif", model=MODEL, **CPU)
    for collection in (False, True):
        source = item(tmp_path, [f.name for f in files], collection=collection)  # hrefs relative to the item
        predict(source, tmp_path / "from_item.tif", model=MODEL, overwrite=True, **CPU)
        np.testing.assert_array_equal(labels(tmp_path / "from_item.tif")[0], labels(tmp_path / "one_file.tif")[0])


def test_a_stac_item_without_common_names_needs_asset_choices(tmp_path):
    files, _ = bands(tmp_path)
    source = item(tmp_path, [str(f) for f in files], common=False)
    with pytest.raises(InvalidInputError, match="no asset for band 'red'; choose one with --asset red=KEY"):
        item_band_files(source, ["red", "green", "blue"])
    assert item_band_files(source, ["red", "green", "blue"], {"red": "B04", "green": "B03", "blue": "B02"}) == \
        [str(f) for f in files]
    common = ["--random-weights", "lale_s1", "--device", "cpu", "--engine", "torch", "--tile-size", "128"]
    result = CliRunner().invoke(cli, ["predict", str(source), "-o", str(tmp_path / "map.tif"), *common, "--asset",
                                      "red=B04", "--asset", "green=B03", "--asset", "blue=B02"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(cli, ["predict", "--band-files", ",".join(map(str, files)), "-o",
                                      str(tmp_path / "files.tif"), *common])
    assert result.exit_code == 0, result.output
    chosen, listed = labels(tmp_path / "map.tif"), labels(tmp_path / "files.tif")
    np.testing.assert_array_equal(chosen[0], listed[0])  # the assets chosen are the files in band order
    assert chosen[1:] == listed[1:] and chosen[1] == from_origin(600000, 5000000, 10, 10)


def test_a_stac_item_over_http_gives_the_local_map(tmp_path):
    files, pixels = bands(tmp_path)
    item(tmp_path, [f.name for f in files])
    predict(stacked(tmp_path, pixels), tmp_path / "local.tif", model=MODEL, **CPU)
    with serve_folder(tmp_path) as url:
        predict(f"{url}/item.json", tmp_path / "remote.tif", model=MODEL, **CPU)
    np.testing.assert_array_equal(labels(tmp_path / "remote.tif")[0], labels(tmp_path / "local.tif")[0])


def test_bands_that_cannot_be_stacked_are_one_line_errors(tmp_path):
    files, _ = bands(tmp_path)
    other_crs = band_file(tmp_path / "utm19.tif", np.zeros((H, W)), crs="EPSG:32619")
    with pytest.raises(InvalidInputError, match="CRS .* differs"):
        predict([files[0], files[1], other_crs], tmp_path / "map.tif", model=MODEL, **CPU)
    with pytest.raises(InvalidInputError, match="2 band file"):
        predict(files[:2], tmp_path / "map.tif", model=MODEL, **CPU)
    assert not (tmp_path / "map.tif").exists() and not list(tmp_path.glob(".*"))


def test_segment_reads_band_files_through_the_same_vrt(tmp_path):
    """The VRT's XML opens in rioxarray as it is: segment() on band files gives predict's map."""
    import rioxarray

    from lale_geo.inference.segment import segment

    files, _ = bands(tmp_path)
    source = item(tmp_path, [f.name for f in files])
    predict(source, tmp_path / "map.tif", model=MODEL, **CPU)
    da = rioxarray.open_rasterio(stack_vrt(item_band_files(source, ["red", "green", "blue"])), chunks={"x": 128})
    np.testing.assert_array_equal(segment(da, model=MODEL, **CPU).values, labels(tmp_path / "map.tif")[0])
