"""ONNX segmentation models from other tools (GeoDeep, the QGIS plugin Deepness, or ``lale-geo export``) run
through our pipeline: blended tiles, streamed COG, checked reads, cluster and ``segment()`` alike.

Their card comes from a ``NAME.json`` beside ``NAME.onnx`` (a weights card with ``"model": "onnx"``), or from
the model's metadata as those tools write it: ``model_type`` Segmentor, ``class_names``, ``tiles_size``,
``tiles_overlap`` (%), ``resolution`` (cm per pixel), optional ``standardization_mean``/``_std``. The graph
takes (batch, 3, tile, tile) RGB tiles of [0, 1] values (8-bit pixels / 255) and returns class
probabilities; OpenVINO runs it, its batch reshaped to ours.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np

from ..checksums import sha256_of
from ..errors import WeightsError
from ..io.classmap import display_colour
from ..weights import ONNX_MODEL, ClassInfo, WeightsCard

DEFAULT_OVERLAP_PERCENT = 10  # GeoDeep's default when a model does not say


def is_onnx_model(weights) -> bool:
    return isinstance(weights, (str, Path)) and str(weights).lower().endswith(".onnx")


def onnx_card(path: str | Path) -> WeightsCard:
    """The card of the ONNX model at ``path``: ``NAME.json`` beside it, else its metadata."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: file not found")
    beside = path.with_suffix(".json")
    if beside.is_file():
        card = WeightsCard.read(beside)
        if card.model != ONNX_MODEL:
            raise WeightsError(f"{beside}: the card of an ONNX model says \"model\": \"onnx\", not {card.model!r}")
        return card
    import onnx

    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - onnx raises DecodeError and others for a damaged file
        raise WeightsError(f"{path}: not a readable ONNX model ({type(e).__name__})") from None
    meta = {p.key: p.value for p in graph.metadata_props}
    kind = _parsed(meta.get("model_type", '"Segmentor"'), path, "model_type")
    if kind != "Segmentor":
        raise WeightsError(f"{path}: a {kind} model; lale-geo runs segmentation models (model_type Segmentor)")
    dims = [d.dim_value or None for d in graph.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] not in (3, None):
        raise WeightsError(f"{path}: input shape {dims}; lale-geo feeds (batch, 3, tile, tile) RGB tiles")
    tile = int(meta.get("tiles_size") or dims[2] or 0)
    if not tile:
        raise WeightsError(f"{path}: neither a static tile size nor tiles_size in its metadata; add a NAME.json card")
    names = _class_names(meta, path)
    overlap = round(tile * float(meta.get("tiles_overlap", DEFAULT_OVERLAP_PERCENT)) / 100)
    mean = tuple(_parsed(meta["standardization_mean"], path, "standardization_mean")) \
        if "standardization_mean" in meta else (0.0, 0.0, 0.0)
    std = tuple(_parsed(meta["standardization_std"], path, "standardization_std")) \
        if "standardization_std" in meta else (1.0, 1.0, 1.0)
    palette = np.random.default_rng(0).integers(0, 256, (len(names), 3)).tolist()
    resolution = meta.get("resolution")
    return WeightsCard(
        name=path.stem, model=ONNX_MODEL, bands=("red", "green", "blue"), input_range=(0.0, 255.0), mean=mean, std=std,
        classes=tuple(ClassInfo(i, n, display_colour(n, tuple(palette[i]))) for i, n in enumerate(names)),
        tile_size=tile, overlap=min(overlap, tile - 1), license="as the model's own", sha256=sha256_of(path),
        training={"source": f"ONNX metadata of {path.name}",
                  **({"resolution_cm": float(resolution)} if resolution else {})})


def _class_names(meta: dict, path: Path) -> list[str]:
    """Class names by id 0..N-1 from ``class_names`` (a JSON or Python dict of id -> name, or a list)."""
    if "class_names" not in meta:
        raise WeightsError(f"{path}: no class_names in its metadata; add them, or a NAME.json card beside it")
    names = _parsed(meta["class_names"], path, "class_names")
    if isinstance(names, dict):
        try:
            by_id = {int(k): str(v) for k, v in names.items()}
        except ValueError:
            raise WeightsError(f"{path}: class_names keys must be class ids") from None
        if sorted(by_id) != list(range(len(by_id))):
            raise WeightsError(f"{path}: class_names ids must be 0..{len(by_id) - 1}")
        return [by_id[i] for i in range(len(by_id))]
    if isinstance(names, list):
        return [str(n) for n in names]
    raise WeightsError(f"{path}: class_names must map ids to names")


def _parsed(text: str, path: Path, key: str):
    """A metadata value: JSON, or a Python literal (Deepness's examples write dicts with str())."""
    try:
        return json.loads(text)
    except ValueError:
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise WeightsError(f"{path}: metadata {key} is neither JSON nor a literal: {text[:60]!r}") from None
