import json

import numpy as np
import pytest
import rasterio

from lale_geo.errors import DatasetError
from lale_geo.training.datasets import IGNORE_INDEX, ClassTable, decode_mask, load_split, resolve_class_table

COLOURS = [(60, 16, 152), (132, 41, 246), (110, 193, 228)]


def write_png(path, array, colormap=None):
    bands = 1 if array.ndim == 2 else array.shape[0]
    data = array[None] if array.ndim == 2 else array
    with rasterio.open(path, "w", driver="PNG", width=data.shape[2], height=data.shape[1], count=bands,
                       dtype="uint8") as dst:
        dst.write(data)
        if colormap:
            dst.write_colormap(1, colormap)


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "classes.json"
    path.write_text(json.dumps({
        "name": "toy", "classes": [{"id": i, "name": f"c{i}", "colour": list(c)} for i, c in enumerate(COLOURS)],
        "ignore": [[0, 0, 0]], "splits": {"train": ["a"], "val": ["b"]}}))
    return ClassTable.read(path)


def test_rgb_mask_maps_exact_colours_and_ignore(tmp_path, table):
    ids = np.array([[0, 1, 2], [2, 255, 0]], np.uint8)
    lut = np.array(COLOURS + [(0, 0, 0)], np.uint8)
    rgb = lut[np.where(ids == 255, 3, ids)].transpose(2, 0, 1)
    write_png(tmp_path / "m.png", rgb)
    np.testing.assert_array_equal(decode_mask(tmp_path / "m.png", table), ids)


def test_palette_mask_is_converted_to_colours(tmp_path, table):
    indices = np.array([[0, 1], [2, 3]], np.uint8)  # palette order differs from class order
    colormap = {0: (*COLOURS[2], 255), 1: (*COLOURS[0], 255), 2: (0, 0, 0, 255), 3: (*COLOURS[1], 255)}
    write_png(tmp_path / "p.png", indices, colormap)
    np.testing.assert_array_equal(decode_mask(tmp_path / "p.png", table), [[2, 0], [IGNORE_INDEX, 1]])


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "float32"])
def test_value_masks_of_any_number_type(tmp_path, dtype):
    """uint8/uint16 labels go through a lookup table, other types through their distinct values."""
    from lale_geo.training.datasets import _decode

    table = ClassTable("v", ("a", "b"), ((0, 0, 0), (1, 1, 1)), (10, 300), (), (0,), {})
    labels = np.array([[[10, 300, 0], [300, 10, 10]]]).astype(dtype) if dtype != "uint8" else \
        np.array([[[10, 10, 0], [10, 10, 10]]], np.uint8)
    expected = np.where(labels[0] == 10, 0, np.where(labels[0] == 0, IGNORE_INDEX, 1))
    np.testing.assert_array_equal(_decode(labels, None, table, tmp_path / "m.tif"), expected)
    labels[0, 0, 0] = 7
    with pytest.raises(DatasetError, match="m.tif: mask values not in class table 'v': 7"):
        _decode(labels, None, table, tmp_path / "m.tif")


def test_value_masks_outside_sixteen_bits_and_wide_colour_masks(tmp_path, table):
    from lale_geo.training.datasets import _decode

    values = ClassTable("v", ("a", "b"), ((0, 0, 0), (1, 1, 1)), (70000, 5), (), (-9999,), {})
    labels = np.array([[[70000, -9999, 5]]], np.int32)
    np.testing.assert_array_equal(_decode(labels, None, values, tmp_path / "m.tif"), [[0, IGNORE_INDEX, 1]])
    with pytest.raises(DatasetError, match="w.tif: uint16 colour mask"):
        _decode(np.full((3, 2, 2), 300, np.uint16), None, table, tmp_path / "w.tif")


def test_unknown_colour_is_an_error_naming_it(tmp_path, table):
    write_png(tmp_path / "bad.png", np.full((3, 2, 2), 7, np.uint8))
    with pytest.raises(DatasetError, match=r"RGB\(7,7,7\)"):
        decode_mask(tmp_path / "bad.png", table)


def test_load_split_pairs_images_and_masks(tmp_path, table):
    for split, n in (("a", 2), ("b", 1)):
        (tmp_path / split / "images").mkdir(parents=True)
        (tmp_path / split / "masks").mkdir()
        for i in range(n):
            write_png(tmp_path / split / "images" / f"img{i}.png", np.full((3, 4, 5), i, np.uint8))
            write_png(tmp_path / split / "masks" / f"img{i}.png",
                      np.array(COLOURS[i], np.uint8)[:, None, None].repeat(4, 1).repeat(5, 2))
    train = load_split(tmp_path, table, "train")
    assert [s.name for s in train] == ["a/img0", "a/img1"]
    assert train[1].image.shape == (3, 4, 5) and (train[1].mask == 1).all()
    with pytest.raises(DatasetError, match="unknown split"):
        load_split(tmp_path, table, "test")


def test_shipped_dubai_table_reads_the_real_data(dubai):
    table = resolve_class_table(dubai)
    assert table.class_names == ("Building", "Land", "Road", "Vegetation", "Water")
    val = load_split(dubai, table, "val")
    assert len(val) == 18
    masks = np.concatenate([s.mask.ravel() for s in val])
    assert set(np.unique(masks)) <= {0, 1, 2, 3, 4, IGNORE_INDEX}
    assert (masks < 5).mean() > 0.98  # ignore colours are under 2 % of pixels (README: < 1 % each)


def test_geotiff_label_rasters_with_values_and_four_bands(tmp_path):
    from rasterio.transform import Affine

    table_path = tmp_path / "classes.json"
    table_path.write_text(json.dumps({
        "name": "s2", "bands": ["blue", "green", "red", "nir"], "input_range": [0, 10000],
        "classes": [{"id": 0, "name": "water", "value": 80}, {"id": 1, "name": "tree", "value": 10}],
        "ignore": [0], "splits": {"train": ["a"], "val": ["a"]}}))
    table = ClassTable.read(table_path)
    (tmp_path / "a" / "images").mkdir(parents=True)
    (tmp_path / "a" / "masks").mkdir()
    grid = {"crs": "EPSG:32633", "transform": Affine(10, 0, 0, 0, -10, 0), "width": 40, "height": 30}
    with rasterio.open(tmp_path / "a" / "images" / "s.tif", "w", driver="GTiff", count=4, dtype="uint16",
                       **grid) as dst:
        dst.write(np.full((4, 30, 40), 1234, np.uint16))
    labels = np.where(np.arange(40)[None, :] < 20, 80, 10).repeat(30, 0).astype(np.uint8)
    labels[0, 0] = 0
    with rasterio.open(tmp_path / "a" / "masks" / "s.tif", "w", driver="GTiff", count=1, dtype="uint8",
                       **grid) as dst:
        dst.write(labels, 1)
    [sample] = load_split(tmp_path, table, "train")
    assert sample.image.shape == (4, 30, 40) and sample.mask[0, 0] == IGNORE_INDEX
    assert (sample.mask[1:, :20] == 0).all() and (sample.mask[:, 20:] == 1).all()
    with rasterio.open(tmp_path / "a" / "masks" / "s.tif", "r+") as dst:
        dst.transform = Affine(20, 0, 0, 0, -20, 0)
    with pytest.raises(DatasetError, match="not on the grid"):
        load_split(tmp_path, table, "train")
