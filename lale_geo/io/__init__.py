"""Reading and writing rasters, with no torch: the checked reads (``raster``), the bounded scene sample and
per-scene scaling, band files and STAC items stacked into one VRT, class maps (``classmap``), and the write
end: finished uint8 rows (``outputs``), their MODE overviews and the verified COG (``writers``)."""
