import json

import numpy as np
import rasterio
from PIL import Image
from rasterio.transform import Affine

from lale_geo.maps.preview import render_preview


def test_preview_legend_lists_every_class_present_and_colours_match(tmp_path, rasterio_fixtures):
    labels = np.full((200, 300), 255, np.uint8)
    labels[:100, :150], labels[:100, 150:], labels[100:, :200] = 0, 2, 3  # class 1 absent
    path = tmp_path / "m.tif"
    with rasterio.open(path, "w", driver="GTiff", width=300, height=200, count=1, dtype="uint8", crs="EPSG:32633",
                       transform=Affine(1, 0, 0, 0, -1, 0), nodata=255) as dst:
        dst.write(labels, 1)
        dst.write_colormap(1, {0: (255, 0, 0, 255), 1: (0, 255, 0, 255), 2: (0, 0, 255, 255), 3: (9, 9, 9, 255)})
        dst.update_tags(LALE_GEO_CLASSES=json.dumps(["red", "green", "blue", "dark"]))
    legend = render_preview(path, tmp_path / "p.png", size=150)
    assert legend == ["red", "blue", "dark"]
    picture = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    assert picture.shape[0] >= 100 and tuple(picture[10, 10]) == (255, 0, 0) and tuple(picture[10, 140]) == (0, 0, 255)
    assert tuple(picture[90, 140]) == (255, 255, 255)  # nodata is white
    render_preview(path, tmp_path / "q.png", size=150, with_input=rasterio_fixtures / "RGB.byte.tif")
    assert Image.open(tmp_path / "q.png").width > Image.open(tmp_path / "p.png").width + 100
