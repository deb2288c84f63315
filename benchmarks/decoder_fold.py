"""The decoder's fuse folded into its projections against the papers' concat-then-fuse: what the fuse
convolution cost (OpenVINO's per-node profile of the old graph), the MACs, the largest logit difference
between the two forms, and bare OpenVINO throughput of the shipped weights' graphs, interleaved rounds.

    python benchmarks/decoder_fold.py [--rounds 6]

Each graph runs as the CLI's engine does (two streams of requests of 2 tiles, 2 threads, 256 px tiles).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def fuse_share(core, graph: str, x: np.ndarray) -> float:
    """Share of one request's time (1 thread, OpenVINO's profile) spent in the fuse convolution: the nodes
    OpenVINO made of the ONNX node that torch's exporter scoped ``decoder.fuse.0``."""
    import onnx

    fuse = [n.name for n in onnx.load(graph).graph.node
            if "decoder.fuse.0" in {p.key: p.value for p in n.metadata_props}.get("pkg.torch.onnx.name_scopes", "")]
    compiled = core.compile_model(core.read_model(graph), "CPU", {
        "INFERENCE_NUM_THREADS": 1, "PERF_COUNT": True, "ENABLE_CPU_PINNING": False, "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    for _ in range(5):
        request.infer({0: x})
    nodes = request.profiling_info
    total = sum((p.real_time for p in nodes), datetime.timedelta())
    ours = sum((p.real_time for p in nodes if any(p.node_name.startswith(name) for name in fuse)), datetime.timedelta())
    if not fuse or not ours:
        raise RuntimeError("the fuse convolution was not found in the graph or its profile")
    return ours / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    import openvino as ov
    import torch

    from lale_geo.inference.engines.onnx_files import export_onnx, quiet_exporter
    from lale_geo.models import count_macs
    from lale_geo.weights import int8_paths, load_weights

    model, card = load_weights("lale_s1_dubai")
    x = np.random.default_rng(0).random((2, 3, 256, 256), np.float32)
    graphs, logits = {}, {}
    cache = Path(tempfile.mkdtemp())
    for name, fold in (("fp32, concat then fuse (before)", False), ("fp32, fuse folded (now)", True)):
        model.decoder.fold = fold
        with torch.inference_mode():
            logits[fold] = model(torch.from_numpy(x)).numpy()
        with quiet_exporter():  # a fresh cache folder: no export of an earlier version of the code
            graphs[name] = str(export_onnx(model, card, 2, 256, cache_dir=cache))
    graphs["INT8 shipped (fuse folded, decoder fp32)"] = str(int8_paths("lale_s1_dubai")[0])
    core = ov.Core()
    share = fuse_share(core, next(iter(graphs.values())), x)
    config = {"INFERENCE_NUM_THREADS": 2, "PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": 2,
              "ENABLE_CPU_PINNING": False, "INFERENCE_PRECISION_HINT": "f32"}
    requests = {name: [core.compile_model(core.read_model(g), "CPU", config).create_infer_request()
                       for _ in range(4)] for name, g in graphs.items()}
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
    print(f"lale_s1_dubai, 256 px tiles, OpenVINO {ov.__version__}")
    print(f"GMACs per tile: {count_macs(model, 256) / 1e9:.3f} as the paper counts it (concat then fuse), "
          f"{count_macs(model, 256, as_run=True) / 1e9:.3f} as run (fuse folded)")
    print(f"the fuse convolution of the concat-then-fuse graph: {share:.0%} of a request's time (1 thread, "
          "OpenVINO's profile)")
    difference = np.abs(logits[True] - logits[False]).max()
    print(f"logits, torch, 2 random tiles: largest |folded - concat then fuse| {difference:.1e} for logits up to "
          f"{np.abs(logits[False]).max():.1f}")
    print(f"throughput: 2 streams x 2 requests x 2 tiles; medians of {args.rounds} interleaved rounds")
    print("| graph | tiles/s | vs before | rounds |\n|---|---|---|---|")
    first = statistics.median(next(iter(rates.values())))
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {median / first:.2f} | {', '.join(f'{v:.0f}' for v in values)} |")


if __name__ == "__main__":
    main()
