"""OpenVINO on a small CPU: one request with all threads (latency mode) against parallel single-threaded
streams (the batch cut into parts), bare engine, shipped weights, 256 px tiles, batches of 8.

    python benchmarks/engines_streams.py [--rounds 5] [--batches 6]

Configurations run interleaved (A B C A B C ...) and the median tiles/s is reported with every round's
figure: these machines are noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import openvino as ov

from lale_geo.inference.engines import export_onnx, normalise
from lale_geo.io.scaling import Scale
from lale_geo.weights import load_weights


def configuration(model, card, part: int, streams: int, threads: int, tile: int = 256, batch: int = 8):
    """A callable running one batch of ``batch`` tiles as ``batch // part`` requests of ``part`` tiles."""
    config = {"INFERENCE_NUM_THREADS": threads, "ENABLE_CPU_PINNING": False, "INFERENCE_PRECISION_HINT": "f32"}
    config.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams} if streams > 1 else
                  {"PERFORMANCE_HINT": "LATENCY"})
    compiled = ov.Core().compile_model(str(export_onnx(model, card, part, tile)), "CPU", config)
    requests = [compiled.create_infer_request() for _ in range(batch // part)]
    pixels = np.random.default_rng(0).integers(0, 255, (batch, 3, tile, tile)).astype(np.float32)
    x = normalise(pixels, Scale.of(0, 255), card.mean, card.std)
    parts = [np.ascontiguousarray(x[i * part:(i + 1) * part]) for i in range(len(requests))]

    def run() -> None:
        for request, data in zip(requests, parts):
            request.start_async({0: data})
        for request in requests:
            request.wait()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", type=int, default=6)
    args = parser.parse_args()
    threads = os.cpu_count() or 1
    model, card = load_weights("lale_s1_dubai")
    configs = {f"1 request x 8 tiles, {threads} threads (latency)": configuration(model, card, 8, 1, threads),
               f"{threads} streams, 2 requests x 4 tiles": configuration(model, card, 4, threads, threads),
               f"{threads} streams, 4 requests x 2 tiles": configuration(model, card, 2, threads, threads)}
    rates: dict[str, list[float]] = {name: [] for name in configs}
    for run in configs.values():
        run()  # warm-up
    for _ in range(args.rounds):
        for name, run in configs.items():
            start = time.perf_counter()
            for _ in range(args.batches):
                run()
            rates[name].append(8 * args.batches / (time.perf_counter() - start))
    base = statistics.median(next(iter(rates.values())))
    print(f"OpenVINO {ov.__version__}, lale_s1_dubai, 256 px tiles, {threads} CPUs, median of {args.rounds} rounds")
    print("| configuration | tiles/s | vs latency mode | rounds |")
    print("|---|---|---|---|")
    for name, values in rates.items():
        print(f"| {name} | {statistics.median(values):.1f} | {statistics.median(values) / base:.2f} | "
              f"{', '.join(f'{v:.0f}' for v in values)} |")


if __name__ == "__main__":
    main()
