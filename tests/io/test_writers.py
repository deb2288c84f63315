"""lale_geo.io.writers: rows written to a hidden temporary file, published as a verified COG in one step, or
removed without a trace."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine

from lale_geo.errors import OutputExistsError, RasterIOError
from lale_geo.io.writers import RasterWriter, fatal_write_errors, row_digest

GRID = Affine(0.5, 0, 500000, 0, -0.5, 2800000)


def profile(height=40, width=30, count=1, dtype="uint8", nodata=255):
    return dict(driver="GTiff", width=width, height=height, count=count, dtype=dtype, nodata=nodata,
                crs="EPSG:32640", transform=GRID)


def pixels(count=1, height=40, width=30, seed=0):
    return np.random.default_rng(seed).integers(0, 6, (count, height, width), dtype=np.uint8)


def write_all(writer, data, band_rows=16):
    for y0 in range(0, data.shape[1], band_rows):
        writer.write_rows(y0, data[:, y0:y0 + band_rows])


def test_commit_publishes_a_cog_with_the_rows_georeferencing_colours_tags_and_descriptions(tmp_path):
    data = pixels(count=2)
    out = tmp_path / "map.tif"
    writer = RasterWriter(out, profile(count=2), colormap={0: (10, 20, 30, 255), 255: (0, 0, 0, 0)},
                          tags={"LALE_GEO_MODEL": "lale_s1", "N": 3}, band_descriptions=["first", "second"])
    write_all(writer, data)
    assert writer.commit() == out
    assert [p.name for p in tmp_path.iterdir()] == ["map.tif"]
    with rasterio.open(out) as cog:
        assert cog.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert cog.crs.to_epsg() == 32640 and cog.transform == GRID and cog.nodata == 255
        assert cog.colormap(1)[0] == (10, 20, 30, 255) and cog.colormap(1)[255] == (0, 0, 0, 0)
        assert cog.tags()["LALE_GEO_MODEL"] == "lale_s1" and cog.tags()["N"] == "3"
        assert cog.descriptions == ("first", "second")
        np.testing.assert_array_equal(cog.read(), data)


def test_nothing_exists_under_the_final_name_until_commit_and_abort_leaves_nothing(tmp_path):
    out = tmp_path / "map.tif"
    writer = RasterWriter(out, profile())
    writer.write_rows(0, pixels()[0, :10])  # (rows, width) for one band
    assert not out.exists()
    assert writer.tmp.exists() and writer.tmp.parent == tmp_path and writer.tmp.name.startswith(".map.tif.")
    assert writer.digests == [(0, 10, row_digest(pixels()[:, :10]))]
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_an_existing_output_is_not_replaced_without_overwrite(tmp_path):
    out = tmp_path / "map.tif"
    out.write_bytes(b"someone else's map")
    writer = RasterWriter(out, profile(), overwrite=False)
    write_all(writer, pixels())
    with pytest.raises(OutputExistsError, match="map.tif: was created by something else"):
        writer.commit()
    assert out.read_bytes() == b"someone else's map"
    assert [p.name for p in tmp_path.iterdir()] == ["map.tif"]
    writer = RasterWriter(out, profile())  # overwrite=True by default
    write_all(writer, pixels(seed=1))
    writer.commit()
    with rasterio.open(out) as cog:
        np.testing.assert_array_equal(cog.read(), pixels(seed=1))


def test_rows_that_read_back_different_are_not_published(tmp_path):
    out = tmp_path / "map.tif"
    writer = RasterWriter(out, profile())
    write_all(writer, pixels())
    y0, rows, _ = writer.digests[1]
    writer.digests[1] = (y0, rows, "0" * 16)  # as if the write of rows 16-32 had been lost
    with pytest.raises(RasterIOError, match=r"map.tif: rows 16-32 read back differ from the rows written .*"
                                            r"nothing was published$"):
        writer.commit()
    assert list(tmp_path.iterdir()) == []


def test_a_keyed_writer_resumes_in_the_same_temporary_file(tmp_path):
    out, data = tmp_path / "map.tif", pixels()
    first = RasterWriter(out, profile(), key="0123456789abcdef")
    first.write_rows(0, data[:, :24])  # then the run is killed: no abort
    second = RasterWriter(out, profile(), key="0123456789abcdef", resume=True)
    assert second.tmp == first.tmp
    second.write_rows(24, data[:, 24:])
    second.commit()
    with rasterio.open(out) as cog:
        np.testing.assert_array_equal(cog.read(), data)
    assert [p.name for p in tmp_path.iterdir()] == ["map.tif"]


def test_rows_are_cast_to_the_profile_dtype(tmp_path):
    out = tmp_path / "prob.tif"
    writer = RasterWriter(out, profile(count=3, height=8, width=8, dtype="uint16", nodata=None),
                          overview_resampling="AVERAGE")
    data = np.arange(3 * 8 * 8, dtype=np.int64).reshape(3, 8, 8) * 100
    writer.write_rows(0, data)
    writer.commit()
    with rasterio.open(out) as cog:
        assert cog.dtypes == ("uint16",) * 3
        np.testing.assert_array_equal(cog.read(), data)


def test_a_failed_write_is_one_line_naming_the_output_and_what_was_done(tmp_path):
    out = tmp_path / "map.tif"
    with pytest.raises(RasterIOError, match=r"^.*map.tif: writing rows 0-8 failed \(No space left on device\); "
                                            r"nothing was published$"):
        with fatal_write_errors(out, "writing rows 0-8"):
            raise OSError("No space left on device\nsecond line")
    with pytest.raises(ValueError, match="a bug"):  # not a write error: it goes through as it is
        with fatal_write_errors(out, "writing rows 0-8"):
            raise ValueError("a bug")
