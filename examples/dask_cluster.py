"""The same segmentation on a dask.distributed cluster. A LocalCluster here; for a real cluster change
the two marked lines (and keep the scene, the output folder and the weights on storage that every
worker reads at the same path).

    python examples/dask_cluster.py SCENE.tif landcover.tif
"""

import sys

import rioxarray
from distributed import Client, LocalCluster, Lock

import lale_geo

if __name__ == "__main__":
    scene, out = sys.argv[1], sys.argv[2]
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None)  # real cluster: remove
    with Client(cluster) as client:  # real cluster: Client("tcp://scheduler-host:8786")
        da = rioxarray.open_rasterio(scene, chunks={"band": -1, "y": 2048, "x": 2048}, lock=False)
        classes = lale_geo.segment(da, block_size=1024)  # each worker loads the model once
        classes.rio.write_nodata(255, encoded=False, inplace=True)
        # Workers write their blocks themselves; a cluster-wide lock keeps the GeoTIFF consistent.
        classes.rio.to_raster(out, tiled=True, compress="DEFLATE", lock=Lock("rio"))
        print(f"wrote {out} on {len(client.scheduler_info()['workers'])} workers")
    cluster.close()
