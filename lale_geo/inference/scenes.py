"""Many scenes in one run: one engine for all (loaded and compiled once), one map per scene in an output
folder, and a scene that fails is reported while the others still finish."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from ..errors import InvalidInputError, LaleGeoError, OutputExistsError
from ..files import is_remote
from .predict import PredictSummary, Progress, predict
from .settings import InferenceSettings, one_engine_for_all

SCENE_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img")  # what a folder of scenes is searched for


@dataclass
class SceneResult:
    """One scene of a many-scene run: its summary, or why it failed, or that an earlier run finished it."""

    src: str
    output: Path
    summary: PredictSummary | None = None
    error: str | None = None
    finished_before: bool = False  # with resume: its map was there already
    warnings: list[str] = field(default_factory=list)


def scene_list(sources: Sequence[str | Path]) -> list[str]:
    """The scenes named: files and URLs as given, folders replaced by the rasters in them (sorted)."""
    scenes: list[str] = []
    for source in sources:
        if not is_remote(source) and Path(source).is_dir():
            found = sorted(p for p in Path(source).iterdir() if p.suffix.lower() in SCENE_SUFFIXES and p.is_file())
            if not found:
                raise InvalidInputError(f"{source}: no rasters ({', '.join(SCENE_SUFFIXES)}) in this folder")
            scenes += [str(p) for p in found]
        else:
            scenes.append(str(source))
    return scenes


def scene_outputs(scenes: Sequence[str], out_dir: str | Path) -> list[Path]:
    """The map of each scene: ``OUT_DIR/<scene name>.tif``; two scenes with one name are refused."""
    out_dir = Path(out_dir)
    stems = [PurePosixPath(urlsplit(s).path).stem if is_remote(s) else Path(s).stem for s in scenes]
    seen: dict[str, str] = {}
    for scene, stem in zip(scenes, stems):
        if stem in seen:
            raise InvalidInputError(f"{scene}: has the name of {seen[stem]}, so both maps would be "
                                    f"{out_dir / (stem + '.tif')}; run them into different folders")
        seen[stem] = scene
    return [out_dir / f"{stem}.tif" for stem in stems]


def predict_scenes(sources: Sequence[str | Path], out_dir: str | Path, settings: InferenceSettings | None = None, *,
                   model=None, overwrite: bool = False, resume: bool = False, scheduler: str | None = None,
                   progress: Callable[[str], Progress | None] | None = None,
                   done: Callable[[SceneResult], None] | None = None) -> list[SceneResult]:
    """Predict every scene of ``sources`` (files, URLs, folders of rasters) into ``out_dir`` (made if missing).

    Existing maps are refused before any work unless ``overwrite``; with ``resume``, a scene whose map exists
    is skipped as finished and an interrupted one continues. A scene that fails (bad input, a damaged
    block) is recorded with its one-line error and the others still run. ``progress(scene)`` gives that
    scene's progress; ``done(result)`` is told each scene's result as it ends.
    """
    scenes = scene_list(sources)
    outputs = scene_outputs(scenes, out_dir)
    folder = Path(out_dir)
    if not folder.is_dir():
        if not folder.parent.is_dir():
            raise InvalidInputError(f"{folder}: neither this output folder nor its parent {folder.parent} exists")
        folder.mkdir()
    existing = [o for o in outputs if o.exists()]
    if existing and not (overwrite or resume):
        raise OutputExistsError(f"{existing[0]}: exists ({len(existing)} of the {len(outputs)} maps do); pass "
                                "--overwrite to replace them or --resume to keep them and run the others")
    results = []
    with one_engine_for_all():
        for scene, output in zip(scenes, outputs):
            results.append(_one_scene(scene, output, settings, model, overwrite, resume, scheduler, progress))
            if done:
                done(results[-1])
    return results


def _one_scene(scene: str, output: Path, settings, model, overwrite: bool, resume: bool, scheduler: str | None,
               progress: Callable[[str], Progress | None] | None) -> SceneResult:
    result = SceneResult(scene, output)
    if resume and not overwrite and output.exists():
        result.finished_before = True
        return result
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result.summary = predict(scene, output, settings, model=model, overwrite=overwrite, resume=resume,
                                     scheduler=scheduler, progress=progress(scene) if progress else None)
        except LaleGeoError as e:
            result.error = str(e)
    result.warnings = [str(w.message) for w in caught]
    return result
