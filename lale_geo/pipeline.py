"""Orchestrators: compose tiling, inference and stitching over an image or a raster file."""

from __future__ import annotations

import numpy as np

from .inference import TilePredictor
from .stitching import RowStitcher
from .tiling import TileGrid, read_padded


def predict_array(predictor: TilePredictor, image: np.ndarray, scale: tuple[float, float],
                  tile_size: int, overlap: int, batch_size: int = 8) -> np.ndarray:
    """Blended logits (classes, H, W) of an in-memory (bands, H, W) image, tiled like a scene.

    The last batch is padded to ``batch_size`` so that the model always sees one static shape.
    """
    _, H, W = image.shape
    grid = TileGrid(H, W, tile_size, overlap)
    stitcher = RowStitcher(grid, predictor.num_classes)
    out = np.empty((predictor.num_classes, H, W), np.float32)
    tiles = list(grid.tiles())
    for start in range(0, len(tiles), batch_size):
        batch = tiles[start:start + batch_size]
        stack = np.stack([read_padded(image, t) for t in batch])
        if len(batch) < batch_size:
            stack = np.concatenate([stack, np.repeat(stack[-1:], batch_size - len(batch), axis=0)])
        logits = predictor(stack, scale)
        for tile, tile_logits in zip(batch, logits):
            for band in stitcher.add(tile, tile_logits):
                out[:, band.y0:band.y0 + band.logits.shape[1]] = band.logits
    return out
