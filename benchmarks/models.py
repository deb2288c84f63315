"""Model size, cost and CPU throughput, all models and engines measured in one run.

    python benchmarks/models.py [--sizes 256 512] [--batch 8] [--seconds 6] [--models lale_s1 ...]

Prints a table: params, GMACs (attention matmuls included), weights size, and images/s at each size for
eager PyTorch (channels-last, inference mode), onnxruntime and OpenVINO (when installed), fp32, random init.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import tempfile
import time

import numpy as np
import torch

from lale_geo.inference.engines import create_engine
from lale_geo.io.scaling import Scale
from lale_geo.models import count_macs, count_params, create_model
from lale_geo.weights import ClassInfo, WeightsCard, weights_size_mb


def card_for(name: str, num_classes: int) -> WeightsCard:
    return WeightsCard(name=name, model=name, classes=tuple(ClassInfo(i, f"c{i}", (0, 0, 0))
                                                          for i in range(num_classes)),
                       bands=("red", "green", "blue"), input_range=(0, 255), mean=(0.5,) * 3, std=(0.25,) * 3,
                       tile_size=512, overlap=128, license="n/a", sha256="0" * 64)


def images_per_second(engine, batch: np.ndarray, seconds: float) -> float:
    engine(batch, Scale.of(0, 255))  # warm-up (and first-call planning)
    runs, start = 0, time.perf_counter()
    while True:
        engine(batch, Scale.of(0, 255))
        runs += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and runs >= 2:
            return runs * len(batch) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["lale_s1", "lale_s2", "lale_s3", "lale_s4", "segformer_b0",
                                                         "lemevit_tiny", "lemevit_small", "lemevit_base"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=6.0, help="timing per cell, after one warm-up")
    parser.add_argument("--num-classes", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("LALE_GEO_CACHE", tempfile.mkdtemp(prefix="lale_geo_bench_"))
    engines = ["torch"] + [e for e in ("onnxruntime", "openvino") if importlib.util.find_spec(e)]
    threads = torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, batch {args.batch}, fp32, random init, "
          f"{args.num_classes} classes; images/s over >= {args.seconds:g} s per cell")
    header = f"{'model':<14}{'params M':>9}{'MB':>7}" + "".join(f"{'GMACs@' + str(s):>11}" for s in args.sizes)
    header += "".join(f"{e[:8] + '@' + str(s):>13}" for s in args.sizes for e in engines)
    print(header)
    results = {}
    for name in args.models:
        torch.manual_seed(0)
        model = create_model(name, num_classes=args.num_classes).eval()
        card = card_for(name, args.num_classes)
        row = f"{name:<14}{count_params(model) / 1e6:>9.2f}{weights_size_mb(model):>7.1f}"
        row += "".join(f"{count_macs(model, s) / 1e9:>11.2f}" for s in args.sizes)
        for size in args.sizes:
            batch = np.random.default_rng(0).integers(0, 255, (args.batch, 3, size, size)).astype(np.float32)
            for engine_name in engines:
                try:
                    engine = create_engine(engine_name, (model, card), device="cpu", batch_size=args.batch,
                                           tile_size=size, threads=threads)
                    ips = images_per_second(engine, batch, args.seconds)
                except Exception as e:  # report, do not hide: a cell that cannot run says so
                    print(f"  {name} {engine_name}@{size}: failed ({e})")
                    ips = float("nan")
                results[(name, engine_name, size)] = ips
                row += f"{ips:>13.1f}"
        print(row, flush=True)
    if "lale_s1" in args.models and "segformer_b0" in args.models:
        print("\nLALE-S1 / SegFormer-B0 throughput, same backend and size:")
        for size in args.sizes:
            ratios = ", ".join(f"{e} {results[('lale_s1', e, size)] / results[('segformer_b0', e, size)]:.2f}x"
                               for e in engines)
            print(f"  {size}x{size}: {ratios}")


if __name__ == "__main__":
    main()
