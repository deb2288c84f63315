"""Small models with a known receptive field, for exact stitching tests, and their cards."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lale_geo.weights import ClassInfo, WeightsCard


class LocalModel(nn.Module):
    """A per-pixel (``radius=0``) or small-conv model: its output depends only on nearby pixels."""

    size_multiple = 32

    def __init__(self, num_classes: int = 4, radius: int = 0, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.num_classes = num_classes
        self.net = nn.Sequential(nn.Conv2d(3, 16, 2 * radius + 1, padding=radius), nn.Tanh(),
                                 nn.Conv2d(16, num_classes, 1))

    def forward(self, x):
        return self.net(x) * 10


class ConstantModel(nn.Module):
    size_multiple = 32

    def __init__(self, logits=(0.3, 2.0, -1.0)) -> None:
        super().__init__()
        self.num_classes = len(logits)
        self.register_buffer("logits", torch.tensor(logits))

    def forward(self, x):
        return self.logits.view(1, -1, 1, 1).expand(x.shape[0], -1, *x.shape[2:]).clone()


def card_for(num_classes: int, tile_size: int = 128, overlap: int = 32) -> WeightsCard:
    return WeightsCard(
        name="test", model="lale_s1",
        classes=tuple(ClassInfo(i, f"c{i}", (10 * i, 20, 30)) for i in range(num_classes)),
        bands=("red", "green", "blue"), input_range=(0, 255), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
        tile_size=tile_size, overlap=overlap, license="n/a", sha256="0" * 64)


def assert_onnx_parity(model, x, tmp_path, tolerance=1e-4):
    """The model exported with torch.onnx gives the same logits under onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    with torch.inference_mode():
        ref = model.eval()(x).numpy()
    path = tmp_path / "model.onnx"
    torch.onnx.export(model, (x,), str(path), dynamo=True, verbose=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(out - ref).max() < tolerance


RANGE_SERVER = r"""
import http.server, json, os, re, sys, threading

answer_at_most = int(sys.argv[2]) if len(sys.argv) > 2 else -1  # then stop answering (-1: never)
counted = {"requests": 0, "bytes": 0, "stalled": 0}  # stalled: requests held without an answer
lock = threading.Lock()

class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/__stats":  # bytes of files sent so far
            body = json.dumps(counted).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        return super().do_GET()

    def send_head(self):
        with lock:
            counted["requests"] += 1
            stalled = 0 <= answer_at_most < counted["requests"]
            counted["stalled"] += stalled
        if stalled:
            threading.Event().wait()  # stops answering, for good: the test ends by killing the server
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = self.translate_path(self.path)
        if not match or not os.path.isfile(path):
            self.remaining = None
            return super().send_head()
        size = os.path.getsize(path)
        start, end = int(match[1]), min(int(match[2] or size - 1), size - 1)
        f = open(path, "rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.remaining = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        if self.remaining is None:
            data = source.read()
        else:
            data = source.read(self.remaining)
        outputfile.write(data)
        with lock:
            counted["bytes"] += len(data)

os.chdir(sys.argv[1])
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def serve_folder(folder, answer_at_most: int = -1):
    """Context manager: an HTTP server on 127.0.0.1 serving ``folder``; yields its URL. It answers Range
    requests, as the object stores that GDAL reads COGs from do (http.server alone sends whole files), and
    counts what it sends (``GET /__stats``: requests, bytes, and requests held unanswered). With
    ``answer_at_most`` = N it stops answering after N requests (a stalled server): the stall comes at a
    request count the test chooses, never at a time. It runs in its own process: GDAL may hold the GIL
    while it waits for an answer. The server is killed on exit (a held handler would hold a terminate()
    up): it owns no files, so nothing depends on when it dies."""
    import contextlib
    import subprocess
    import sys

    @contextlib.contextmanager
    def running():
        server = subprocess.Popen([sys.executable, "-c", RANGE_SERVER, str(folder), str(answer_at_most)],
                                  stdout=subprocess.PIPE, text=True)
        try:
            yield f"http://127.0.0.1:{server.stdout.readline().strip()}"
        finally:
            server.kill()  # a stalled handler would hold a terminate() up
            server.wait(timeout=10)

    return running()
