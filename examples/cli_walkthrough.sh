#!/usr/bin/env bash
# The command line end to end on one scene: predict, vectorize, info.
#   examples/cli_walkthrough.sh SCENE.tif [OUT_DIR]
set -euo pipefail
scene=${1:?usage: cli_walkthrough.sh SCENE.tif [OUT_DIR]}
out=${2:-walkthrough}
mkdir -p "$out"

# 1. A land-cover map (COG with colours and class names) plus per-class confidence.
lale-geo predict "$scene" -o "$out/landcover.tif" --confidence "$out/confidence.tif" --overwrite

# 2. Polygons: merge patches under 10 pixels into their neighbours, simplify shared edges once.
lale-geo vectorize "$out/landcover.tif" -o "$out/landcover.gpkg" --min-pixels 10 --overwrite

# 3. What the map holds: pixels and hectares per class, and how it was made.
lale-geo info "$out/landcover.tif"
