"""The decoder's fuse folded into its projections against the papers' concat-then-fuse: bare OpenVINO
throughput of the shipped weights' graphs, interleaved rounds.

    python benchmarks/decoder_fold.py [--rounds 6]

Each graph runs as the CLI's engine does (two streams of requests of 2 tiles, 2 threads, 256 px tiles).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    import openvino as ov

    from lale_geo.inference.engines.onnx_files import export_onnx, quiet_exporter
    from lale_geo.weights import int8_paths, load_weights

    model, card = load_weights("lale_s1_dubai")
    graphs = {}
    for name, fold in (("fp32, concat then fuse (before)", False), ("fp32, fuse folded (now)", True)):
        model.decoder.fold = fold
        with quiet_exporter():  # each its own cache folder: the export's key does not see the flag
            graphs[name] = str(export_onnx(model, card, 2, 256, cache_dir=Path(tempfile.mkdtemp())))
    graphs["INT8 shipped (fuse folded, decoder fp32)"] = str(int8_paths("lale_s1_dubai")[0])
    core = ov.Core()
    config = {"INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": 2,
              "ENABLE_CPU_PINNING": False, "INFERENCE_PRECISION_HINT": "f32"}
    requests = {name: [core.compile_model(core.read_model(g), "CPU", config).create_infer_request()
                       for _ in range(4)] for name, g in graphs.items()}
    x = np.random.default_rng(0).random((2, 3, 256, 256), np.float32)
    rates: dict[str, list[float]] = {name: [] for name in requests}
    for _ in range(args.rounds):
        for name, batch in requests.items():
            start = time.perf_counter()
            for _ in range(10):
                for r in batch:
                    r.start_async({0: x})
                for r in batch:
                    r.wait()
            rates[name].append(10 * len(batch) * 2 / (time.perf_counter() - start))
    first = statistics.median(next(iter(rates.values())))
    print(f"lale_s1_dubai, 256 px tiles, OpenVINO {ov.__version__}, 2 streams x 2 requests x 2 tiles; "
          f"medians of {args.rounds} interleaved rounds")
    print("| graph | tiles/s | vs before | rounds |\n|---|---|---|---|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {median / first:.2f} | {', '.join(f'{v:.0f}' for v in values)} |")


if __name__ == "__main__":
    main()
