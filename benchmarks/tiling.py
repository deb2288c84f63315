"""How tile size and overlap change trained LALE maps: agreement with the untiled prediction, agreement
between two grids shifted against each other, validation macro F1, and the tile work, in one run.

    python benchmarks/tiling.py [--weights lale_s1_dubai] [--configs 256:32 256:64 512:64 512:128 ...]

Data: the Dubai validation split (tiles 2 and 4, whole images). "Untiled" runs each whole image through
the network at once (padded to a multiple of 32). "Shifted" predicts the image padded by (s, s) pixels
of reflection at the top-left, so that the tile grid moves by s pixels against the image, and compares
on the original pixels. Used to choose the defaults in the weights card (DESIGN.md §3).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from lale_geo.inference.engines import TorchEngine, normalise
from lale_geo.inference.grid import TileGrid
from lale_geo.inference.tile_loop import predict_array
from lale_geo.io.scaling import Scale
from lale_geo.training.datasets import load_split, resolve_class_table
from lale_geo.training.metrics import confusion_matrix, scores
from lale_geo.weights import load_weights

DUBAI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dubai-aerial"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="lale_s1_dubai")
    parser.add_argument("--configs", nargs="+", default=["256:32", "256:64", "512:64", "512:128", "512:192"])
    parser.add_argument("--shift", type=int, default=200)
    parser.add_argument("--data", default=str(DUBAI))
    args = parser.parse_args()
    model, card = load_weights(args.weights)
    predictor = TorchEngine(model, card.mean, card.std, "cpu")
    table = resolve_class_table(args.data)
    samples = load_split(args.data, table, "val", in_memory_limit_mb=float("inf"))  # uses .image and .mask
    n = card.num_classes
    untiled = []
    for s in samples:
        x = torch.from_numpy(normalise(s.image[None], Scale.of(0, 255), card.mean, card.std))
        with torch.inference_mode():
            untiled.append(predictor.model(x)[0].numpy().argmax(0))
    base = scores(sum(confusion_matrix(u, s.mask, n) for u, s in zip(untiled, samples)), card.class_names)
    print(f"weights {args.weights}; {len(samples)} validation images, "
          f"{sum(s.mask.size for s in samples) / 1e6:.1f} MP; shift {args.shift} px")
    print(f"untiled (whole image at once): macro F1 {base['macro_f1']:.4f}, mIoU {base['miou']:.4f}")
    print(f"{'tile':>6}{'overlap':>9}{'= untiled %':>13}{'= shifted %':>13}{'macro F1':>10}{'mIoU':>8}"
          f"{'work x':>8}{'seconds':>9}")
    for config in args.configs:
        tile, overlap = map(int, config.split(":"))
        start = time.perf_counter()
        cm = np.zeros((n, n), np.int64)
        same_untiled = same_shift = total = work = 0
        for s, ref in zip(samples, untiled):
            labels = predict_array(predictor, s.image, Scale.of(0, 255), tile, overlap).argmax(0)
            k = args.shift
            padded = np.pad(s.image, ((0, 0), (k, 0), (k, 0)), mode="reflect")
            shifted = predict_array(predictor, padded, Scale.of(0, 255), tile, overlap).argmax(0)[k:, k:]
            cm += confusion_matrix(labels, s.mask, n)
            same_untiled += int((labels == ref).sum())
            same_shift += int((labels == shifted).sum())
            total += labels.size
            work += len(TileGrid(*labels.shape, tile, overlap)) * tile * tile
        result = scores(cm, card.class_names)
        print(f"{tile:>6}{overlap:>9}{100 * same_untiled / total:>13.2f}{100 * same_shift / total:>13.2f}"
              f"{result['macro_f1']:>10.4f}{result['miou']:>8.4f}{work / total:>8.2f}"
              f"{time.perf_counter() - start:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
