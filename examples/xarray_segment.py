"""Land cover inside an xarray/Dask workflow: open lazily, segment, write, then class areas with xarray.

    python examples/xarray_segment.py SCENE.tif landcover.tif
"""

import sys

import dask.array as dsa
import numpy as np
import rioxarray

import lale_geo

scene, out = sys.argv[1], sys.argv[2]

# Lazy (band, y, x) array; nothing is read yet.
da = rioxarray.open_rasterio(scene, chunks={"band": -1, "y": 2048, "x": 2048})

# Lazy class ids on the same grid, CRS and transform (pick bands with bands=[3, 2, 1] if needed).
classes = lale_geo.segment(da)
names = classes.attrs["class_names"]

# Write with rioxarray: this computes the map block by block, once.
classes.rio.write_nodata(255, encoded=False, inplace=True)
classes.rio.to_raster(out, tiled=True, compress="DEFLATE")
print(f"wrote {out}")

# Class areas from the written map: pixel counts per class id times the pixel area (projected CRS).
landcover = rioxarray.open_rasterio(out, chunks={"y": 2048, "x": 2048}).squeeze("band", drop=True)
res_x, res_y = landcover.rio.resolution()
counts = dsa.bincount(landcover.data.ravel().astype(np.int64), minlength=256).compute()
for class_id, name in enumerate(names):
    print(f"{name:<14}{counts[class_id] * abs(res_x * res_y) / 1e4:>14.2f} ha")
print(f"{'nodata':<14}{counts[255]:>14} px")
