#!/usr/bin/env bash
# The command line end to end on one scene: predict, vectorize, preview, info, STAC.
#   examples/cli_walkthrough.sh SCENE.tif [OUT_DIR]
set -euo pipefail
scene=${1:?usage: cli_walkthrough.sh SCENE.tif [OUT_DIR]}
out=${2:-walkthrough}
mkdir -p "$out"

# 1. A land-cover map (COG with colours and class names) plus per-class confidence.
lale-geo predict "$scene" -o "$out/landcover.tif" --confidence "$out/confidence.tif" --overwrite

# 2. Polygons: merge patches under 10 pixels into their neighbours, simplify shared edges once.
lale-geo vectorize "$out/landcover.tif" -o "$out/landcover.gpkg" --min-pixels 10 --overwrite

# 3. Look before you read: the map beside the scene, with a legend.
lale-geo preview "$out/landcover.tif" -o "$out/preview.png" --with-input "$scene" --size 512 --overwrite

# 4. What the map holds: pixels and hectares per class, and how it was made.
lale-geo info "$out/landcover.tif"

# 5. A STAC item for the three files (set --datetime to the scene's acquisition time if you know it).
lale-geo stac "$out/landcover.tif" -o "$out/item.json" --asset "confidence=$out/confidence.tif" \
    --asset "polygons=$out/landcover.gpkg" --overwrite
