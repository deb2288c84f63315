"""Class tables: the classes of a labelled dataset (ids, names, colours) and how its masks encode them
(mask colours or values, what to ignore, named splits). Shipped tables: ``dubai-aerial`` and ``aras400k``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DatasetError


def _display_colour(i: int) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in np.random.default_rng(i).integers(40, 256, 3))
    return r, g, b


@dataclass(frozen=True)
class ClassTable:
    """Classes of a labelled dataset and how its masks encode them."""

    name: str
    class_names: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...]
    values: tuple[int, ...] | None
    ignore_colours: tuple[tuple[int, int, int], ...]
    ignore_values: tuple[int, ...]
    splits: dict[str, tuple[str, ...]]
    licence: str = ""
    attribution: str = ""
    bands: tuple[str, ...] = ("red", "green", "blue")
    input_range: tuple[float, float] = (0.0, 255.0)
    mean: tuple[float, ...] | None = None  # per band, on [0, 1]-scaled values; None: ImageNet for RGB,
    std: tuple[float, ...] | None = None   # otherwise measured on the training images

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @classmethod
    def read(cls, path: str | Path) -> ClassTable:
        try:
            data = json.loads(Path(path).read_text())
            classes = sorted(data["classes"], key=lambda c: c["id"])
            if [c["id"] for c in classes] != list(range(len(classes))):
                raise DatasetError(f"{path}: class ids must be 0..N-1")
            values = tuple(int(c["value"]) for c in classes) if all("value" in c for c in classes) else None
            ignore = data.get("ignore", [])
            low, high = (float(v) for v in data.get("input_range", (0, 255)))  # (min, max): exactly two
            return cls(
                name=data.get("name", Path(path).stem),
                class_names=tuple(c["name"] for c in classes),
                # Value-coded labels need no colours; give the map distinct ones for display.
                colours=tuple(tuple(c.get("colour", _display_colour(i))) for i, c in enumerate(classes)),
                values=values,
                ignore_colours=tuple(tuple(v) for v in ignore if isinstance(v, list)),
                ignore_values=tuple(int(v) for v in ignore if isinstance(v, int)),
                splits={k: tuple(v) for k, v in data.get("splits", {}).items()},
                licence=data.get("licence", ""),
                attribution=data.get("attribution", ""),
                bands=tuple(data.get("bands", ("red", "green", "blue"))),
                input_range=(low, high),
                mean=tuple(data["mean"]) if "mean" in data else None,
                std=tuple(data["std"]) if "std" in data else None,
            )
        except FileNotFoundError:
            raise DatasetError(f"{path}: class table not found") from None
        except (KeyError, TypeError, ValueError) as e:
            if isinstance(e, DatasetError):
                raise
            raise DatasetError(f"{path}: not a valid class table ({e!r})") from None


def shipped_class_tables() -> dict[str, Path]:
    folder = Path(str(resources.files("lale_geo") / "class_tables"))
    return {p.stem: p for p in folder.glob("*.json")}


def resolve_class_table(root: str | Path, classes: str | Path | None = None) -> ClassTable:
    """The class table given by name or path; default ``root/classes.json``, else a shipped table
    named like the folder (so ``--data .../dubai-aerial`` works as is)."""
    shipped = shipped_class_tables()
    if classes is not None:
        if str(classes) in shipped:
            return ClassTable.read(shipped[str(classes)])
        return ClassTable.read(classes)
    own = Path(root) / "classes.json"
    if own.is_file():
        return ClassTable.read(own)
    if Path(root).name in shipped:
        return ClassTable.read(shipped[Path(root).name])
    raise DatasetError(f"{root}: no classes.json; pass classes=PATH or one of: {', '.join(sorted(shipped))}")
