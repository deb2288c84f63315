"""Weights and their card: what a set of trained weights expects and promises.

The card (JSON beside a ``.safetensors`` file) carries the model and its config, the classes with names
and colours, the input bands and value scaling, the default tiling, the training provenance and the
validation metrics, and the sha256 of the weights file, which is checked before anything is loaded.
Weights are read with safetensors only (never pickle).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .checksums import sha256_of, tensors_sha256
from .errors import WeightsError
from .models import create_model, list_models

if TYPE_CHECKING:
    from torch import nn

DEFAULT_WEIGHTS = "lale_s1_dubai"


ONNX_MODEL = "onnx"  # the card of an ONNX graph from another tool, run as it is (lale_geo.inference.onnx_models)


@dataclass(frozen=True)
class ClassInfo:
    """One output class: its id (logit index), name and display colour (R, G, B)."""

    id: int
    name: str
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class WeightsCard:
    """Everything needed to use a set of weights correctly, validated on construction."""

    name: str
    model: str
    classes: tuple[ClassInfo, ...]
    bands: tuple[str, ...]
    input_range: tuple[float, float]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    tile_size: int
    overlap: int
    license: str
    sha256: str
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    lale_geo_version: str = ""
    domain: dict[str, Any] | None = None  # a lale_geo.inference.domain.DomainProfile as a dict; None: not checked
    int8: dict[str, Any] | None = None  # an INT8 OpenVINO model beside the weights (training.quantize); None: none

    def __post_init__(self) -> None:
        where = f"weights card {self.name!r}"
        if self.model not in list_models() and self.model != ONNX_MODEL:
            raise WeightsError(f"{where}: unknown model {self.model!r}; known: {', '.join(list_models())}")
        if not self.classes:
            raise WeightsError(f"{where}: no classes")
        if [c.id for c in self.classes] != list(range(len(self.classes))):
            raise WeightsError(f"{where}: class ids must be 0..{len(self.classes) - 1} in order")
        names = [c.name for c in self.classes]
        if len(set(names)) != len(names) or not all(names):
            raise WeightsError(f"{where}: class names must be unique and non-empty")
        for c in self.classes:
            if len(c.colour) != 3 or not all(isinstance(v, int) and 0 <= v <= 255 for v in c.colour):
                raise WeightsError(f"{where}: colour of class {c.name!r} must be three integers 0-255")
        if not (len(self.bands) == len(self.mean) == len(self.std)) or not self.bands:
            raise WeightsError(f"{where}: bands, mean and std must have the same, non-zero length")
        if any(s <= 0 for s in self.std):
            raise WeightsError(f"{where}: std values must be positive")
        if not self.input_range[0] < self.input_range[1]:
            raise WeightsError(f"{where}: input_range must be (min, max) with min < max")
        if self.tile_size <= 0 or not 0 <= self.overlap < self.tile_size:
            raise WeightsError(f"{where}: need tile_size > 0 and 0 <= overlap < tile_size")
        if not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise WeightsError(f"{where}: sha256 must be 64 lowercase hex digits")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "weights card") -> WeightsCard:
        if not isinstance(data, dict):
            raise WeightsError(f"{source}: a weights card is a JSON object, not {_json_kind(data)}")
        known = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - data.keys())
        if missing:
            raise WeightsError(f"{source}: missing field(s) {', '.join(missing)}")
        unknown = sorted(data.keys() - known)
        if unknown:
            raise WeightsError(f"{source}: unknown field(s) {', '.join(unknown)}")
        try:
            classes = tuple(ClassInfo(int(c["id"]), str(c["name"]), tuple(c["colour"]))
                            for c in data["classes"])
        except (KeyError, TypeError) as e:
            raise WeightsError(f"{source}: each class needs id, name and colour ({e})") from None
        _check_field_types(data, source)
        values = dict(data, classes=classes, bands=tuple(data["bands"]),
                      input_range=tuple(data["input_range"]), mean=tuple(data["mean"]),
                      std=tuple(data["std"]))
        return cls(**values)

    @classmethod
    def read(cls, path: str | Path) -> WeightsCard:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise WeightsError(f"{path}: weights card not found") from None
        except json.JSONDecodeError as e:
            raise WeightsError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(data, source=str(path))

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def build_model(self) -> nn.Module:
        """The card's model with random weights (load weights into it with ``load_weights``)."""
        try:
            return create_model(self.model, num_classes=self.num_classes, in_chans=len(self.bands),
                                **self.model_kwargs)
        except (TypeError, ValueError) as e:  # model_kwargs the model does not take
            raise WeightsError(f"weights card {self.name!r}: model_kwargs do not fit model {self.model!r} "
                               f"({e})") from None


# Field -> (JSON kinds allowed, what to say): the card is user input, so every type is checked before use
# (a wrong one would otherwise surface later as a TypeError deep in the pipeline).
_NUMBER = (int, float)
_SCALARS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "name": (str, "a string"), "model": (str, "a string"), "license": (str, "a string"),
    "sha256": (str, "a string"), "tile_size": (int, "an integer"), "overlap": (int, "an integer"),
    "model_kwargs": (dict, "an object"), "training": (dict, "an object"), "metrics": (dict, "an object"),
    "lale_geo_version": (str, "a string"), "domain": ((dict, type(None)), "an object or null"),
    "int8": ((dict, type(None)), "an object or null")}
_LISTS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "bands": (str, "strings"), "input_range": (_NUMBER, "numbers"), "mean": (_NUMBER, "numbers"),
    "std": (_NUMBER, "numbers")}


def _json_kind(value: Any) -> str:
    """How JSON calls ``value``'s type, for messages."""
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
             int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def _check_field_types(data: dict[str, Any], source: str) -> None:
    """Every field of a card has its JSON type (booleans are not numbers); raise WeightsError naming the
    first field that does not."""
    for name, (kinds, what) in _SCALARS.items():
        value = data.get(name)
        if name in data and (not isinstance(value, kinds) or isinstance(value, bool) and kinds is not bool):
            raise WeightsError(f"{source}: {name} must be {what}, not {_json_kind(value)}")
    for name, (kinds, what) in _LISTS.items():
        value = data[name]
        if not isinstance(value, list) or not all(isinstance(v, kinds) and not isinstance(v, bool) for v in value):
            raise WeightsError(f"{source}: {name} must be a list of {what}, not {json.dumps(value)[:80]}")
    if len(data["input_range"]) != 2:
        raise WeightsError(f"{source}: input_range must be two numbers [min, max]")


def shipped_weights_dir() -> Path:
    """Folder of the weights shipped with the package (``weights/`` in the repository)."""
    return Path(str(resources.files("lale_geo_weights")))


def list_weights() -> list[str]:
    """Names of the shipped weights."""
    return sorted(p.stem for p in shipped_weights_dir().glob("*.json"))


def resolve_weights(name_or_path: str | Path) -> tuple[Path, Path]:
    """(safetensors path, card path) for a shipped weights name or a ``.safetensors``/``.json`` path."""
    text = str(name_or_path)
    if text in list_weights():
        base = shipped_weights_dir() / text
    elif text.endswith((".safetensors", ".json")):
        base = Path(text).with_suffix("")
    else:
        raise WeightsError(f"{text!r} is neither shipped weights ({', '.join(list_weights()) or 'none'}) "
                           "nor a .safetensors or .json path")
    tensors, card = base.with_suffix(".safetensors"), base.with_suffix(".json")
    for p in (tensors, card):
        if not p.is_file():
            raise WeightsError(f"{p}: file not found (weights need both NAME.safetensors and NAME.json)")
    return tensors, card


def load_card(name_or_path: str | Path) -> WeightsCard:
    """Read and validate the card of shipped or local weights (the weights file is not read)."""
    return WeightsCard.read(resolve_weights(name_or_path)[1])


def load_weights(name_or_path: str | Path = DEFAULT_WEIGHTS) -> tuple[nn.Module, WeightsCard]:
    """The model of a card with its verified weights loaded, in eval mode.

    Raises:
        WeightsError: missing files, an invalid card, a checksum mismatch, or tensors that do not fit.
    """
    tensors, card_path = resolve_weights(name_or_path)
    card = WeightsCard.read(card_path)
    actual = sha256_of(tensors)
    if actual != card.sha256:
        raise WeightsError(f"{tensors}: sha256 {actual} does not match its card ({card.sha256}); "
                           "the file is corrupt or belongs to other weights")
    from safetensors.torch import load_file

    model = card.build_model()
    try:
        state = load_file(str(tensors))
    except Exception as e:  # safetensors' own error type: a header or size it cannot parse
        raise WeightsError(f"{tensors}: not a readable safetensors file ({str(e).splitlines()[0]})") from None
    mismatch = describe_mismatch(model.state_dict(), state)
    if mismatch:
        raise WeightsError(f"{tensors}: tensors do not fit model {card.model!r} of its card "
                           f"({card.num_classes} classes, {len(card.bands)} bands): {mismatch}")
    model.load_state_dict(state, strict=True)
    return model.eval(), card


def describe_mismatch(expected: dict[str, Any], found: dict[str, Any], examples: int = 2) -> str:
    """One line saying how the tensors ``found`` differ from the model's ``expected`` state (missing,
    unexpected, other shapes, with a few names each), or "" when they fit. Torch's own message lists every
    tensor over many lines, and its first line says nothing of what differs."""
    def some(names: list[str]) -> str:
        more = f" and {len(names) - examples} more" if len(names) > examples else ""
        return ", ".join(names[:examples]) + more

    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [f"{k} {tuple(found[k].shape)} in the file, {tuple(v.shape)} in the model"
              for k, v in expected.items() if k in found and tuple(found[k].shape) != tuple(v.shape)]
    parts = [f"{len(names)} {what} ({some(names)})" for what, names in
             (("tensor(s) of another shape", shapes), ("missing", missing), ("unexpected", unexpected)) if names]
    return "; ".join(parts)


def save_weights(model: nn.Module, card_fields: dict[str, Any], base: str | Path) -> WeightsCard:
    """Write ``base.safetensors`` and its card ``base.json`` (the sha256 is filled in here)."""
    from safetensors.torch import save_file

    base = Path(base)
    base.parent.mkdir(parents=True, exist_ok=True)
    tensors = base.with_suffix(".safetensors")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(tensors))
    card = WeightsCard.from_dict(dict(card_fields, sha256=sha256_of(tensors)), source=str(base))
    card.write(base.with_suffix(".json"))
    return card


def weights_size_mb(model: nn.Module) -> float:
    """Size of the model's parameters and buffers in MB as stored (fp32 for our weights)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 1e6


def random_weights(model: str = "lale_s1", num_classes: int = 5, seed: int = 0) -> tuple[nn.Module, WeightsCard]:
    """An untrained model and a card that says so (for benchmarks and tests; outputs are stamped)."""
    import numpy as np
    import torch

    torch.manual_seed(seed)
    net = create_model(model, num_classes=num_classes).eval()
    digest = tensors_sha256(net)
    rng = np.random.default_rng(seed)

    def colour() -> tuple[int, int, int]:
        r, g, b = (int(v) for v in rng.integers(0, 256, 3))
        return r, g, b

    card = WeightsCard(
        name=f"untrained-{model}", model=model,
        classes=tuple(ClassInfo(i, f"class {i}", colour()) for i in range(num_classes)),
        bands=("red", "green", "blue"), input_range=(0, 255), mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225), tile_size=512, overlap=128, license="n/a", sha256=digest,
        training={"untrained": True, "seed": seed})
    return net, card


def int8_paths(name_or_path: str | Path) -> tuple[Path, Path]:
    """(model .xml, weights .bin) of the INT8 OpenVINO model beside the weights (see lale_geo.training.quantize)."""
    tensors, _ = resolve_weights(name_or_path)
    base = tensors.with_suffix("")
    return base.with_name(base.name + ".int8.xml"), base.with_name(base.name + ".int8.bin")


def verified_int8_model(name_or_path: str | Path, card: WeightsCard) -> Path:
    """The INT8 model's .xml path, once every file of the weights matches the checksum its card records:
    the INT8 graph (.xml, where the card records it) and weights (.bin), and the fp32 tensors too, which
    an INT8 run does not load but which must still be the card's (checked once per process and file:
    Dask blocks ask again and again)."""
    xml, binary = int8_paths(name_or_path)
    if not card.int8 or not xml.is_file() or not binary.is_file():
        raise WeightsError(f"{card.name}: no INT8 model beside the weights ({xml.name}); make one with "
                           "lale_geo.training.quantize or use precision=fp32")
    tensors, _ = resolve_weights(name_or_path)
    expected = [(binary, card.int8.get("sha256")), (xml, card.int8.get("xml_sha256")), (tensors, card.sha256)]
    for path, digest in expected:
        if digest is None:  # cards from before the graph's checksum was recorded
            continue
        stat = path.stat()
        actual = _sha256_once(str(path), stat.st_size, stat.st_mtime_ns)
        if actual != digest:
            raise WeightsError(f"{path}: sha256 {actual} does not match its card ({digest}); the file is "
                               "damaged or belongs to other weights")
    return xml


@functools.lru_cache(maxsize=8)
def _sha256_once(path: str, size: int, mtime_ns: int) -> str:
    return sha256_of(Path(path))


def load_weights_once(name_or_path: str | Path) -> tuple[nn.Module, WeightsCard]:
    """:func:`load_weights`, once per process and weights file (Dask workers and repeated calls load a
    model once, not per block); a file rewritten since (new size or time) is loaded again. The model is
    shared: callers must not change it."""
    tensors, card = resolve_weights(name_or_path)
    stats = tuple((p.stat().st_size, p.stat().st_mtime_ns) for p in (tensors, card))
    return _load_cached(str(tensors), stats)


@functools.lru_cache(maxsize=4)
def _load_cached(tensors: str, stats: tuple) -> tuple[nn.Module, WeightsCard]:
    return load_weights(tensors)


def load_card_once(name_or_path: str | Path) -> WeightsCard:
    """:func:`load_card`, once per process and card file (Dask blocks ask again and again); a card
    rewritten since (new size or time) is read again."""
    _, card = resolve_weights(name_or_path)
    stat = card.stat()
    return _card_cached(str(card), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _card_cached(path: str, size: int, mtime_ns: int) -> WeightsCard:
    return WeightsCard.read(path)
