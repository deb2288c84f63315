"""Finished maps, ours or any class raster: ``info`` (classes and areas), ``preview`` (a quicklook PNG),
``stac`` (a validated STAC item) and ``polygons`` (``vectorize``). No torch."""
