"""From a scene to a map: settings resolved once, the tile grid and its blending weights (``grid``), tile
sources that read each block once (``strips``), the one tile loop (``tile_loop``), engines, stitching, the
domain guard, and the paths that drive them: ``predict`` (and ``plan``), many ``scenes``, a ``cluster``,
``segment()`` for xarray, wide scenes in column blocks, and ONNX models in and out."""
