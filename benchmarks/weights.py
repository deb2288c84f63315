"""Old vs new weights on the validation images: macro F1 with its bootstrap interval, the weak classes, and
how much each map depends on the tile grid (tiled vs untiled, shifted grid), as `lale-geo evaluate` reports.

    python benchmarks/weights.py [--weights lale_s1_dubai path/to/other.json ...] [--tilings 256:64 256:32]

Each weights entry is scored at each tiling (default: its card's) with the default engine and precision
(what `lale-geo predict` runs); the untiled reference runs each whole image in one torch call. The
MP/s column times the tiled pass alone (a separate run of it), so run this on a quiet machine. The
training recipe comes from each card (crop sizes, scale jitter, photometric strength, EMA, minutes).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lale_geo.inference.engines import TorchEngine
from lale_geo.inference.settings import InferenceSettings
from lale_geo.training.datasets import load_split, resolve_class_table
from lale_geo.training.evaluation import Tiling, evaluate

DUBAI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dubai-aerial"


def recipe(training: dict) -> str:
    crops = f"{training.get('crop')}" + (f"-{training['crop_max']}" if training.get("crop_max") else "")
    parts = [f"fine-tuned from {training['init_from']['name']}"] if training.get("init_from") else []
    parts.append(f"crops {crops}")
    if training.get("scale_jitter"):
        parts.append(f"scale jitter {training['scale_jitter']}")
    parts.append("strong photometric" if training.get("strong_photometric") else "brightness/contrast")
    if training.get("ema"):
        parts.append(f"EMA {training['ema']}")
    threads = "2 threads" if "--threads 2" in training.get("command", "") else "1 thread"
    parts.append(f"{training.get('train_seconds', 0) / 60:.0f} min, {threads}, {training.get('steps')} steps")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", nargs="+", default=["lale_s1_dubai"])
    parser.add_argument("--data", default=str(DUBAI))
    parser.add_argument("--tilings", nargs="*", default=[None], help="TILE:OVERLAP (default: the card's)")
    args = parser.parse_args()
    table = resolve_class_table(args.data)
    samples = load_split(args.data, table, "val")
    print(f"{len(samples)} validation images ({args.data}); 95 % intervals: bootstrap over images")
    megapixels = sum(s.mask.size for s in samples) / 1e6
    print("| weights | recipe | tiling | engine | macro F1 [95 % CI] | mIoU | Vegetation F1 | Land F1 | "
          "tiled = untiled | shifted grid = grid | tiled MP/s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for weights in args.weights:
        for tiling in args.tilings:
            tile, overlap = map(int, tiling.split(":")) if tiling else (None, None)
            resolved = InferenceSettings(weights=weights, tile_size=tile, overlap=overlap).resolve()
            card, engine = resolved.card, resolved.create_engine()
            tiles = Tiling(resolved.tile_size, resolved.overlap, resolved.batch_size)
            start = time.perf_counter()
            evaluate(engine, samples, card.class_names, tiles, mean=card.mean, input_range=card.input_range)
            rate = megapixels / (time.perf_counter() - start)
            result = evaluate(engine, samples, card.class_names, tiles, mean=card.mean, input_range=card.input_range,
                              whole_image=TorchEngine(resolved.model.model, card.mean, card.std, "cpu"))
            low, high = result.macro_f1_ci95
            f1 = {name: s.f1 for name, s in result.per_class.items()}
            agreement = result.agreement
            print(f"| {card.name} | {recipe(card.training)} | {resolved.tile_size}/{resolved.overlap} | {engine.name} "
                  f"| {result.macro_f1:.3f} [{low:.3f}, {high:.3f}] | {result.miou:.3f} | "
                  f"{f1['Vegetation']:.3f} | {f1['Land']:.3f} | {100 * agreement['tiled_vs_untiled']:.1f} % | "
                  f"{100 * agreement['shifted_grid']:.1f} % | {rate:.2f} |", flush=True)


if __name__ == "__main__":
    main()
