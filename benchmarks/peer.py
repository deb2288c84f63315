"""lale-geo against GeoDeep, the simplest peer, on the same scene with the same network.

    python benchmarks/peer.py [--size 10000] [--rounds 1] [--baseline CHECKOUT] [--geodeep-paper-form]

The scene is a real tiled DEFLATE GeoTIFF whose every block holds different real pixels
(``_scenes.real_scene``, 512 px blocks). GeoDeep
(PyPI `geodeep`: 512 px tiles, 10 % overlap, keep-middle stitching, onnxruntime, median filter) runs the
shipped lale_s1_dubai exported for it: input scaled to [0, 1] as GeoDeep feeds it, the card's
normalisation and a softmax inside the graph, a static 1x3x512x512 input, GeoDeep's metadata (resolution
= the scene's, so it does not resample; seg_thresh 0, so every pixel keeps its top class; no small-segment
filter). Ours is `lale-geo predict` with the defaults a `pip install lale_geo` user gets. Each run is its
own process (wall time includes imports, for both); peak RSS is that process's (os.wait4).

Seam measure: how much more often the label changes between two neighbouring columns (or rows) on the
method's own tile edges than elsewhere (1.0 = no seam); gaps within 8 px of the scene's 512 px crop edges
(where its content itself changes) count for neither. Ours: the edges of every tile window; GeoDeep's:
where its keep-middle merge switches from one tile to the next. "Elsewhere" means the other gaps at the same
position modulo 8 px: the network changes labels more often at some phases of its output lattice whatever the
tiling, and our tile edges all lie on one phase. The table also prints the measure without that control,
and a control row: ours measured half a stride away from its tile edges, where no edge lies.

``--baseline CHECKOUT`` adds an earlier version of lale-geo, interleaved with the others: a checkout of that
commit (``git worktree add /tmp/base COMMIT``) run with this environment's packages and its own weights
folder and cache, as a user of that release would run it. ``--geodeep-paper-form`` adds GeoDeep on the
network exported in the papers' decoder form (concat then fuse, what every export was before the fold), so
a ratio of an earlier release is taken against the GeoDeep of its time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _process import run_measured  # noqa: E402
from _scenes import labels, make_scene, make_tile, real_scene  # noqa: E402

GEODEEP_TILE, GEODEEP_OVERLAP = 512, 0.10
# The network's own output lattice: labels change more often at some positions modulo its 4 px output
# stride whatever the tiling (see the control row this script prints). Tile edges are compared with gaps
# of the same phase modulo 8, or a lattice phase would read as a seam.
LATTICE = 8

GEODEEP = """
import sys, geodeep
from geodeep.segmentation import save_mask_to_raster
mask = geodeep.run(sys.argv[1], sys.argv[2], output_type="raw", max_threads=2)
save_mask_to_raster(sys.argv[1], mask, sys.argv[3])
"""


# An earlier checkout's CLI with this environment's packages: no site (the editable install would map
# lale_geo to this checkout), its own lale_geo and weights first, its own cache.
BASELINE = """
import os, sys
tree, shim, cache, packages = sys.argv[1:5]
os.makedirs(shim, exist_ok=True)
if not os.path.exists(os.path.join(shim, "lale_geo_weights")):
    os.symlink(os.path.join(tree, "weights"), os.path.join(shim, "lale_geo_weights"))
os.environ["LALE_GEO_CACHE"] = cache
sys.path[:0] = [tree, shim, *packages.split(os.pathsep)]
sys.argv = ["lale-geo", *sys.argv[5:]]
from lale_geo.cli.main import cli
cli()
"""


def baseline_command(tree: Path, folder: Path) -> list[str]:
    """The start of a ``lale-geo`` command line that runs the checkout ``tree`` (arguments follow)."""
    import site

    return [sys.executable, "-S", "-c", BASELINE, str(tree), str(folder / "baseline-shim"),
            str(folder / "baseline-cache"), os.pathsep.join(site.getsitepackages())]


def export_for_geodeep(path: Path, resolution_cm: float, paper_form: bool = False) -> Path:
    """The shipped weights as a GeoDeep "Segmentor" (``lale-geo export``): [0, 1] input in, class
    probabilities out, GeoDeep's tile size and overlap. ``paper_form``: the decoder as the papers draw it
    (concat then fuse), the graph every export had before the fold."""
    from lale_geo.inference.engines import ModelAndCard
    from lale_geo.inference.onnx_export import export_for_tools

    pair = ModelAndCard.named("lale_s1_dubai")
    pair.model.decoder.fold = not paper_form
    return export_for_tools(pair, path, tile_size=GEODEEP_TILE,
                            overlap=round(GEODEEP_OVERLAP * GEODEEP_TILE), resolution_cm=resolution_cm, overwrite=True)


def change_rates(labels: np.ndarray, axis: int) -> np.ndarray:
    """Share of pixels whose label differs from the next pixel along ``axis``, per column (or row) gap."""
    a = labels if axis == 1 else labels.T
    return (a[:, 1:] != a[:, :-1]).mean(0)


SCENE_BLOCK = 512  # the benchmark scene is a mosaic of 512 px crops: its content changes at their edges
NEAR = 8  # gaps this close to a crop edge are left out of every rate (a real edge, not a seam)


def seam_measure(labels: np.ndarray, edges: list[int], lattice: int = LATTICE) -> float:
    """Change rate across the gaps at ``edges`` (gap g lies between pixels g - 1 and g) over the rate
    expected there: the mean rate of the other gaps at the same position modulo ``lattice`` (1: all other
    gaps). Gaps near the scene's own crop edges count for neither. Averaged over columns and rows; 1.0 = no
    seam."""
    ratios = []
    for axis in (1, 0):
        rates = change_rates(labels, axis)
        gaps = sorted({e - 1 for e in edges if 0 < e < len(rates) + 1})
        on = np.zeros(len(rates), bool)
        on[gaps] = True
        position = np.arange(len(rates)) + 1  # the gap before pixel `position`
        distance = np.minimum(position % SCENE_BLOCK, SCENE_BLOCK - position % SCENE_BLOCK)
        usable = distance > NEAR
        on &= usable
        phase = position % lattice
        expected = np.array([rates[~on & usable & (phase == p)].mean() for p in range(lattice)])
        ratios.append(rates[on].mean() / max(expected[phase[on]].mean(), 1e-9))
    return float(np.mean(ratios))


def our_edges(size: int, tile: int, overlap: int) -> list[int]:
    from lale_geo.inference.grid import axis_origins

    origins = axis_origins(size, tile, overlap)
    return sorted({o for o in origins} | {o + tile for o in origins})


def geodeep_edges(size: int) -> list[int]:
    """Where GeoDeep's keep-middle merge switches tiles: each window after the first starts to count
    half an overlap into it."""
    from geodeep.slidingwindow import generate_for_size

    pad = int(GEODEEP_OVERLAP * GEODEEP_TILE) // 2
    offsets = sorted({w.col_off for w in generate_for_size(size, size, GEODEEP_TILE, GEODEEP_OVERLAP, clip=False)})
    return [o + pad for o in offsets if o > 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--baseline", type=Path, help="a checkout of an earlier commit to run as well")
    parser.add_argument("--geodeep-paper-form", action="store_true",
                        help="also run GeoDeep on the network exported in the papers' decoder form")
    args = parser.parse_args()
    from lale_geo.weights import load_card

    card = load_card("lale_s1_dubai")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ.setdefault("LALE_GEO_CACHE", str(folder / "cache"))
        scene = real_scene(args.size, args.size)
        with rasterio.open(scene) as src:
            resolution_cm = abs(src.transform.a) * 100
        model = export_for_geodeep(folder / "lale_s1_geodeep.onnx", resolution_cm)
        ours_cmd = [sys.executable, "-m", "lale_geo.cli.main", "-q", "predict", str(scene), "-o",
                    str(folder / "ours.tif"), "--overwrite"]
        theirs_cmd = [sys.executable, "-c", GEODEEP, str(scene), str(model), str(folder / "geodeep.tif")]
        commands = {"lale-geo predict": ours_cmd, "GeoDeep": theirs_cmd}
        if args.baseline:
            commit = subprocess.run(["git", "-C", str(args.baseline), "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True, check=True).stdout.strip()
            arguments = ours_cmd[3:-2] + [str(folder / "baseline.tif"), "--overwrite"]
            commands[f"lale-geo predict @ {commit}"] = baseline_command(args.baseline.resolve(), folder) + arguments
        if args.geodeep_paper_form:
            paper = export_for_geodeep(folder / "lale_s1_geodeep_paper_form.onnx", resolution_cm, paper_form=True)
            commands["GeoDeep, papers' decoder form"] = theirs_cmd[:4] + [str(paper), str(folder / "geodeep_paper.tif")]
        small = folder / "small.tif"
        rasterio.shutil.copy(make_scene(make_tile(folder), 600, folder), small, driver="GTiff")
        for name, command in commands.items():  # ONNX and OpenVINO caches, as any second run has them
            if name.startswith("lale-geo"):
                at = command.index(str(scene))
                run_measured(command[:at] + [str(small), "-o", str(folder / "warm.tif"), "--overwrite"])
        runs: dict[str, list] = {name: [] for name in commands}
        for _ in range(args.rounds):  # interleaved
            for name, command in commands.items():
                runs[name].append(run_measured(command)[:2])
        ours, theirs = labels(folder / "ours.tif"), labels(folder / "geodeep.tif")
        edges = {"lale-geo predict": our_edges(args.size, card.tile_size, card.overlap),
                 "GeoDeep": geodeep_edges(args.size)}
        maps = {"lale-geo predict": ours, "GeoDeep": theirs}
        seams = {name: (seam_measure(maps[name], e), seam_measure(maps[name], e, lattice=1))
                 for name, e in edges.items()}
        # Control: the same measure on ours half a stride away from every tile edge (same lattice phase),
        # where no tile edge lies: what "no seam" reads as on this scene.
        half_stride = (card.tile_size - card.overlap) // 2
        control = [e + half_stride for e in edges["lale-geo predict"]]
        control_seams = (seam_measure(ours, control), seam_measure(ours, control, lattice=1))
    mp = args.size**2 / 1e6
    seconds = {name: statistics.median(s for s, _ in r) for name, r in runs.items()}
    print(f"scene: {args.size} x {args.size} real-pixel mosaic, 0.5 m; network lale_s1_dubai for both; "
          f"{os.cpu_count()} CPUs; median of {args.rounds} interleaved round(s)")
    print("| tool | tiling | seconds | MP/s | speed vs GeoDeep | peak RSS MB | seam measure | same, no lattice "
          "control |")
    print("|---|---|---|---|---|---|---|---|")
    tilings = {"lale-geo": f"{card.tile_size}/{card.overlap} blended",
               "GeoDeep": f"{GEODEEP_TILE}/{int(GEODEEP_TILE * GEODEEP_OVERLAP)} keep-middle"}
    for name, r in runs.items():
        rss = max(m for _, m in r)
        seam = " | ".join(f"{v:.2f}" for v in seams[name]) if name in seams else "| "
        print(f"| {name} | {tilings[name.split()[0].rstrip(',')]} | {seconds[name]:.1f} | {mp / seconds[name]:.2f} | "
              f"{seconds['GeoDeep'] / seconds[name]:.2f} | {rss:.0f} | {seam} |")
    if args.geodeep_paper_form:
        paper = seconds["GeoDeep, papers' decoder form"]
        print(f"speed vs GeoDeep on the papers' decoder form ({paper:.1f} s): "
              + ", ".join(f"{name} {paper / seconds[name]:.2f}" for name in seconds if name.startswith("lale-geo")))
    print(f"control, ours {half_stride} px off its tile edges (no edge there): seam measure {control_seams[0]:.2f}, "
          f"without the lattice control {control_seams[1]:.2f}")
    print(f"map agreement (same class): {100 * (ours == theirs).mean():.1f} % of pixels")
    print("raw:", json.dumps(runs))


if __name__ == "__main__":
    main()
