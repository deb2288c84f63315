"""Quicklook PNG of a class map (read from overviews, so any size is fast), with a legend of the classes
present and, optionally, the input scene beside it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from rasterio.enums import ColorInterp, Resampling

from ..errors import InvalidInputError
from ..files import locked_outputs, published
from ..io.classmap import class_colours_for, class_names_for
from ..io.raster import checked_read, open_raster


def _shape(height: int, width: int, size: int) -> tuple[int, int]:
    scale = min(1.0, size / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _input_rgb(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """(h, w, 3) uint8 of a scene's red, green, blue (colour interpretation, else the first bands),
    stretched 2-98 % per band."""
    with open_raster(path) as src:
        interp = list(src.colorinterp)
        wanted = [ColorInterp.red, ColorInterp.green, ColorInterp.blue]
        bands = [interp.index(c) + 1 for c in wanted] if all(c in interp for c in wanted) else \
            [min(i, src.count) for i in (1, 2, 3)]
        with checked_read(src, f"a {shape[1]}x{shape[0]} px overview read"):
            data = src.read(bands, out_shape=(3, *shape), resampling=Resampling.average, masked=True)
        data = data.astype(float)
    out = np.zeros((*shape, 3), np.uint8)
    for i, band in enumerate(data):
        valid = band.compressed()
        if valid.size:
            lo, hi = np.percentile(valid, [2, 98])
            out[..., i] = np.clip((band.filled(lo) - lo) / max(hi - lo, 1e-9) * 255, 0, 255)
    return out


def render_preview(src: str | Path, dst: str | Path, *, size: int = 1024, with_input: str | Path | None = None,
                   classes_file: str | Path | None = None, overwrite: bool = True) -> list[str]:
    """Write a PNG quicklook of the class map ``src``; returns the class names in its legend. The PNG is
    published only once complete; without ``overwrite`` an existing ``dst`` is never replaced."""
    with locked_outputs([dst]):  # a second run to the same file fails now, not at publish
        return _render_locked(src, dst, size, with_input, classes_file, overwrite)


def _render_locked(src, dst, size: int, with_input, classes_file, overwrite: bool) -> list[str]:
    with open_raster(src) as dataset:
        if dataset.count != 1 or not np.issubdtype(np.dtype(dataset.dtypes[0]), np.integer):
            raise InvalidInputError(f"{src}: expected one band of integer class ids")
        shape = _shape(dataset.height, dataset.width, size)
        with checked_read(dataset, f"a {shape[1]}x{shape[0]} px overview read"):
            labels = dataset.read(1, out_shape=shape, resampling=Resampling.mode)
        colormap = class_colours_for(dataset)
        names = class_names_for(dataset, classes_file)
        nodata = dataset.nodata
    present = [int(v) for v in np.unique(labels) if v != nodata]
    negative = [v for v in present if v < 0]
    present = [v for v in present if v >= 0]
    colours = class_colours(present, colormap)
    picture = paint(labels, colours)
    panels = [Image.fromarray(picture)]
    if with_input is not None:
        panels.insert(0, Image.fromarray(_input_rgb(with_input, shape)))
    legend_names = [names.get(v, f"class {v}") for v in present]
    legend: list[int | str] = list(present)  # the legend's entries: class ids, then NEGATIVE if there are any
    legend_colours: dict[int | str, tuple[int, int, int]] = {v: c for v, c in colours.items()}
    if negative:  # not class ids (a colour table has none): drawn as nodata, and the legend says so
        shown = ", ".join(map(str, negative[:3])) + (", ..." if len(negative) > 3 else "")
        legend_names.append(f"negative ids {shown}: not drawn (as nodata)")
        legend_colours[NEGATIVE] = NODATA_COLOUR
        legend.append(NEGATIVE)
    font = ImageFont.load_default(size=16)
    row, pad = 24, 12
    legend_w = 40 + max((int(font.getlength(n)) for n in legend_names), default=60) + 2 * pad
    height = max(shape[0], pad * 2 + row * len(legend))
    canvas = Image.new("RGB", (sum(p.width for p in panels) + pad * (len(panels) - 1) + legend_w, height), "white")
    x = 0
    for panel in panels:
        canvas.paste(panel, (x, 0))
        x += panel.width + pad
    draw = ImageDraw.Draw(canvas)
    for i, (value, name) in enumerate(zip(legend, legend_names)):
        y = pad + i * row
        draw.rectangle([x + pad, y, x + pad + 18, y + 18], fill=legend_colours[value], outline="black")
        draw.text((x + pad + 28, y), name, fill="black", font=font)
    with published(dst, overwrite) as tmp:
        canvas.save(tmp, format="PNG")
    return legend_names


NODATA_COLOUR = (255, 255, 255)
NEGATIVE = "negative"  # legend key of the negative ids


def class_colours(values: list[int], colormap: dict) -> dict[int, tuple[int, int, int]]:
    """A colour per class id: the raster's colour table, else a fixed pseudo-random colour."""
    rng = np.random.default_rng(0)
    return {v: _rgb(colormap.get(v, tuple(rng.integers(0, 256, 3)))) for v in values}


def _rgb(colour: Sequence[int]) -> tuple[int, int, int]:
    """(r, g, b) of a colour table entry (r, g, b, alpha)."""
    r, g, b = (int(c) for c in colour[:3])
    return r, g, b


def paint(labels: np.ndarray, colours: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """(h, w, 3) RGB of class ids: ids in ``colours`` get theirs, any other (nodata, negative ids) white.
    A lookup by rank of the distinct ids, not by id: negative ids would index from the end of a table,
    and a uint32 id would size it."""
    uniques, inverse = np.unique(labels, return_inverse=True)
    table = np.array([colours.get(int(v), NODATA_COLOUR) for v in uniques], np.uint8).reshape(-1, 3)
    return table[inverse.reshape(labels.shape)]
