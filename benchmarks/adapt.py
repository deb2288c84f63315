"""Adapting the shipped weights to a new area (flair-dev, France): the starting weights against each
fine-tuning recipe, on held-out quarters of the images and on an image never trained on.

    python benchmarks/adapt.py [--recipes default "decoder only" ...] [--minutes 10] [--threads 2] [--no-unseen]

Data: the three 512^2 flair-dev images. One fixed quarter of each (the corner whose least-covered class is
best covered: top-right, top-left, bottom-right) is the test set and is never given to ``adapt``; the rest
of each image (two rectangles) is written as the adaptation folder. ``adapt`` holds out a quarter of each
rectangle for its own keep-or-not decision, so the test quarters play no part in any choice.

"unseen": the same recipe run again without one image, then scored on the whole of that image: does the
adaptation carry to another image of the region, or only to the images it saw? flair_3 (pine forest over
limestone scrub: Land, Vegetation) and flair_0 (a reservoir, scrub and woodland: Land, Vegetation, Water;
Water is then labelled nowhere else, so the run also shows what happens to a class the user did not
label). Macro F1 there is over the classes the left-out image holds.

Prints one row per recipe: test-quarter macro F1, Building and Road F1, each unseen image's macro F1, the
steps and minutes used (the run on all three images), and what adapt kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

FLAIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "flair-dev"
TEST_CORNER = {"flair_0": (0, 256), "flair_2": (0, 0), "flair_3": (256, 256)}
UNSEEN = ("flair_3", "flair_0")  # each left out in turn: an image of the region that adapt never saw

RECIPES = {
    "default (decoder only)": {},  # lale_geo.training.adaptation.Recipe: see its docstring
    "decoder, distillation .5": dict(distillation=0.5),
    "whole network, 100 st": dict(lr=5e-4, steps=100, freeze=(), distillation=0.0),
    "whole network, 600 st": dict(lr=5e-4, steps=600, freeze=(), distillation=0.0),
}


def write_pieces(out: Path, names: list[str]) -> None:
    """The adaptation folder: each image without its test quarter, as two rectangles with their labels."""
    (out / "images").mkdir(parents=True)
    (out / "masks").mkdir()
    shutil.copy(FLAIR / "classes.json", out / "classes.json")
    for name in names:
        with rasterio.open(FLAIR / "train" / "images" / f"{name}.tif") as src, \
                rasterio.open(FLAIR / "train" / "masks" / f"{name}.tif") as labels:
            y, x = TEST_CORNER[name]
            oy, ox = 256 - y, 256 - x
            for piece, window in (("rows", rasterio.windows.Window(0, oy, 512, 256)),
                                  ("beside", rasterio.windows.Window(ox, y, 256, 256))):
                for source, folder in ((src, "images"), (labels, "masks")):
                    profile = dict(source.profile, width=int(window.width), height=int(window.height),
                                   transform=source.window_transform(window), tiled=False)
                    profile.pop("blockxsize", None)
                    profile.pop("blockysize", None)
                    with rasterio.open(out / folder / f"{name}_{piece}.tif", "w", **profile) as dst:
                        dst.write(source.read(window=window))


def test_samples(names: list[str], whole: bool = False):
    from lale_geo.training.datasets import Sample

    samples = []
    for name in names:
        image = rasterio.open(FLAIR / "train" / "images" / f"{name}.tif").read()
        mask = rasterio.open(FLAIR / "train" / "masks" / f"{name}.tif").read(1)
        if not whole:
            y, x = TEST_CORNER[name]
            image, mask = image[:, y:y + 256, x:x + 256], mask[y:y + 256, x:x + 256]
        samples.append(Sample(name, image, mask))
    return samples


def score(weights: str | Path, samples) -> dict:
    from lale_geo.inference.engines import TorchEngine
    from lale_geo.training.evaluation import Tiling, evaluate
    from lale_geo.weights import load_weights

    model, card = load_weights(weights)
    engine = TorchEngine(model, card.mean, card.std, device="cpu")
    result = evaluate(engine, samples, card.class_names, Tiling(card.tile_size, card.overlap), mean=card.mean)
    present = [c for c, v in result.per_class.items() if v.support]
    present_f1 = float(np.mean([result.per_class[c].f1 for c in present]))
    return {"macro_f1": result.macro_f1, "present_f1": present_f1,
            **{c: v.f1 for c, v in result.per_class.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--minutes", type=float, default=10.0, help="time budget of each adapt run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-unseen", action="store_true", help="skip the runs that leave an image out")
    parser.add_argument("--weights", default="lale_s1_dubai")
    args = parser.parse_args()
    if not FLAIR.is_dir():
        sys.exit(f"{FLAIR}: not found (flair-dev lives in the shared data folder beside the repository)")
    import torch

    from lale_geo.training.adaptation import Recipe, adapt

    torch.set_num_threads(args.threads)
    names = list(TEST_CORNER)
    tests = test_samples(names)
    unseen = {name: test_samples([name], whole=True) for name in UNSEEN}
    start = score(args.weights, tests)
    start_unseen = {name: score(args.weights, samples)["present_f1"] for name, samples in unseen.items()}
    header = (f"{'recipe':<24}{'test macro F1':>14}{'Building':>10}{'Road':>8}"
              + "".join(f"{'unseen ' + n:>16}" for n in UNSEEN) + f"{'steps':>7}{'minutes':>9}  kept")
    print(f"flair-dev, test = one fixed quarter of each image; {args.threads} threads, budget {args.minutes} min")
    print(header)
    print(f"{'start (' + args.weights + ')':<24}{start['macro_f1']:>14.3f}{start['Building']:>10.3f}"
          f"{start['Road']:>8.3f}" + "".join(f"{start_unseen[n]:>16.3f}" for n in UNSEEN), flush=True)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.recipes:
            recipe = dataclasses.replace(Recipe(), **RECIPES[name])
            folds = [("all", names)] + ([] if args.no_unseen else
                                        [(left, [n for n in names if n != left]) for left in UNSEEN])
            runs = {}
            for fold, used in folds:
                data = Path(tmp) / f"{name}_{fold}".replace(" ", "_").replace(",", "")
                write_pieces(data, used)
                started = time.perf_counter()
                result = adapt(args.weights, data, data / "weights", recipe=recipe, time_budget_min=args.minutes)
                runs[fold] = (result, time.perf_counter() - started, data / "weights.safetensors")
            result, seconds, weights = runs["all"]
            s = score(weights, tests)
            u = {n: score(runs[n][2], unseen[n])["present_f1"] if n in runs else float("nan") for n in UNSEEN}
            rows[name] = {"test": s, "unseen_f1": u, "steps": result.steps, "minutes": seconds / 60,
                          "kept": result.kept, "recipe": dataclasses.asdict(recipe)}
            print(f"{name:<24}{s['macro_f1']:>14.3f}{s['Building']:>10.3f}{s['Road']:>8.3f}"
                  + "".join(f"{u[n]:>16.3f}" for n in UNSEEN) + f"{result.steps:>7}{seconds / 60:>9.1f}  {result.kept}",
                  flush=True)
    print(json.dumps({"start": {"test": start, "unseen_f1": start_unseen}, "recipes": rows}, default=float))


if __name__ == "__main__":
    main()
