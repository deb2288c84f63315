"""Our weights as an ONNX segmentation model that other tools run as they are: GeoDeep and the QGIS plugin
Deepness read its metadata (``model_type``, ``class_names``, ``resolution``, ``tiles_size``,
``tiles_overlap``). The graph takes one (1, bands, tile, tile) float tile of [0, 1] values (what those tools
feed: 8-bit pixels / 255) and returns class probabilities; the card's normalisation and a softmax are inside
it. The export is checked against PyTorch on a real-valued tile before it is published.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InvalidInputError, LaleGeoError
from ..files import check_output, published
from .engines import ModelAndCard, quiet_exporter

TOLERANCE = 1e-4  # largest difference in probability between the ONNX graph and PyTorch


def tool_metadata(card, tile_size: int, overlap: int, resolution_cm: float) -> dict[str, str]:
    """The ONNX metadata GeoDeep and Deepness read, and the card's provenance."""
    return {
        "model_type": json.dumps("Segmentor"),
        "class_names": json.dumps({str(c.id): c.name for c in card.classes}),
        "resolution": f"{resolution_cm:g}",
        "tiles_size": str(tile_size),
        "tiles_overlap": str(round(100 * overlap / tile_size)),
        "seg_thresh": "0.0",  # every pixel gets its most likely class, as lale-geo's maps do
        "seg_small_segment": "0",
        "lale_geo_weights": card.name, "lale_geo_weights_sha256": card.sha256, "lale_geo_bands": ",".join(card.bands),
    }


def default_resolution_cm(card) -> float:
    """The card's pixel size in cm when it names one size (not a range, which leaves the choice to the user)."""
    sizes = (card.domain or {}).get("pixel_size_m")
    if isinstance(sizes, (int, float)) or (isinstance(sizes, list) and len(set(sizes)) == 1):
        return 100 * float(sizes if isinstance(sizes, (int, float)) else sizes[0])
    known = f"their training pixel size is {sizes[0]:g}-{sizes[1]:g} m" if sizes else "their card has no pixel size"
    raise InvalidInputError(f"{card.name}: {known}; give the cm per pixel the tools should resample scenes to "
                            "(--resolution CM; resolution_cm= in Python)")


def export_for_tools(weights: str | Path | ModelAndCard | tuple, path: str | Path, *, tile_size: int | None = None,
                     overlap: int | None = None, resolution_cm: float | None = None,
                     overwrite: bool = False) -> Path:
    """Write ``weights`` as an ONNX model with GeoDeep/Deepness metadata to ``path`` (checked, then published).

    Args:
        tile_size, overlap: what the tools cut (default: the card's tiling).
        resolution_cm: cm per pixel the tools resample scenes to (default: the card's pixel size, when it
            names one).
    """
    import onnx
    import torch

    path = check_output(path, overwrite)
    pair = ModelAndCard.named(weights) if isinstance(weights, (str, Path)) else ModelAndCard.of(weights)
    model, card = pair.model, pair.card
    tile_size, overlap = tile_size or card.tile_size, card.overlap if overlap is None else overlap
    if not 0 <= overlap < tile_size:
        raise InvalidInputError(f"overlap={overlap}: must be at least 0 and less than tile_size={tile_size}")
    resolution_cm = resolution_cm if resolution_cm is not None else default_resolution_cm(card)
    low, high = card.input_range

    class ForTools(torch.nn.Module):  # [0, 1] in, probabilities out
        def __init__(self) -> None:
            super().__init__()
            self.net = model.eval().cpu()
            scale = (255.0 if high > 1 else 1.0)  # the tools' [0, 1] back to the card's input range
            self.register_buffer("scale", torch.tensor(scale / (high - low)))
            self.register_buffer("low", torch.tensor(low / (high - low)))
            self.register_buffer("mean", torch.tensor(card.mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(card.std, dtype=torch.float32).view(1, -1, 1, 1))

        def forward(self, x):
            unit = x * self.scale - self.low
            return self.net((unit - self.mean) / self.std).softmax(1)

    wrapped = ForTools().eval()
    tile = torch.from_numpy(np.random.default_rng(0).random((1, len(card.bands), tile_size, tile_size), np.float32))
    with published(path, overwrite=overwrite) as tmp, quiet_exporter():
        torch.onnx.export(wrapped, (tile,), str(tmp), dynamo=True, external_data=False, verbose=False)
        graph = onnx.load(str(tmp))
        for key, value in tool_metadata(card, tile_size, overlap, resolution_cm).items():
            prop = graph.metadata_props.add()
            prop.key, prop.value = key, value
        onnx.save(graph, str(tmp))
        with torch.no_grad():
            expected = wrapped(tile).numpy()
        difference = float(np.abs(_run_onnx(tmp, tile.numpy()) - expected).max())
        if not difference <= TOLERANCE:
            raise LaleGeoError(f"{path}: the exported graph differs from PyTorch by {difference:.2g} in probability "
                               f"(more than {TOLERANCE:g}); nothing was published")
    return path


def _run_onnx(path: Path, tile: np.ndarray) -> np.ndarray:
    """The ONNX graph's output on ``tile``, with onnxruntime (what GeoDeep and Deepness use) or OpenVINO."""
    try:
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: tile})[0]
    except ImportError:
        import openvino

        return next(iter(openvino.Core().compile_model(str(path), "CPU")(tile).values()))
