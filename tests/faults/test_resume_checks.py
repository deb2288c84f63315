"""Resume checks what it resumes: a missing or altered partial file starts the run over (with a warning)
instead of trusting the journal, and partial files that no run can resume any more are cleaned up."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from lale_geo.inference.predict import predict
from tests.faults.common import write_scene
from tests.helpers import LocalModel, card_for

CPU = {"device": "cpu", "engine": "torch", "batch_size": 1}
CARD = card_for(3, 64, 16)


class InterruptedModel(LocalModel):
    """A per-pixel model whose run is interrupted (as by Ctrl-C) at its ``calls``-th batch."""

    made = 0

    def __init__(self, calls: int) -> None:
        super().__init__(3)
        self.calls = calls
        InterruptedModel.made += 1  # engines are cached by weights: a buffer of its own gets this one its own
        self.register_buffer("instance", torch.tensor([InterruptedModel.made]))

    def forward(self, x):
        self.calls -= 1
        if self.calls == 0:
            raise KeyboardInterrupt
        return super().forward(x)


@pytest.fixture
def scene(tmp_path):
    (tmp_path / "in").mkdir()
    src = write_scene(tmp_path / "in" / "scene.tif", 160)
    reference = tmp_path / "in" / "reference.tif"
    predict(src, reference, model=(LocalModel(3), CARD), **CPU)
    (tmp_path / "out").mkdir()
    return src, reference, tmp_path / "out" / "map.tif"


def interrupt(src, out, **options):
    with pytest.raises(KeyboardInterrupt):
        predict(src, out, model=(InterruptedModel(8), CARD), **CPU, **options)
    journal = next(out.parent.glob(".map.tif.*.journal.json"))
    assert json.loads(journal.read_text())["rows_done"] > 0
    return next(p for p in out.parent.glob(".map.tif.*.part.tif") if ".cog." not in p.name)


def damage_rows(partial):
    with rasterio.open(partial, "r+") as dst:
        dst.write(np.full((1, 8, dst.width), 7, np.uint8), window=Window(0, 0, dst.width, 8))


@pytest.mark.parametrize("fault", ["deleted", "altered rows", "emptied"])
def test_resume_starts_over_when_the_partial_file_does_not_match_its_journal(scene, fault):
    src, reference, out = scene
    partial = interrupt(src, out)
    if fault == "deleted":
        partial.unlink()
    elif fault == "altered rows":
        damage_rows(partial)
    else:
        partial.write_bytes(b"")
    with pytest.warns(UserWarning, match="starting over"):
        predict(src, out, model=(LocalModel(3), CARD), resume=True, **CPU)
    assert out.read_bytes() == reference.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["map.tif"]


def test_resume_of_an_intact_partial_file_continues(scene):
    src, reference, out = scene
    interrupt(src, out)
    predict(src, out, model=(LocalModel(3), CARD), resume=True, **CPU)
    assert out.read_bytes() == reference.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["map.tif"]


@pytest.mark.parametrize("resume", [False, True])
def test_a_new_run_cleans_partial_files_that_cannot_be_resumed(scene, resume):
    src, reference, out = scene
    interrupt(src, out, scale=(0, 200))  # another key: never resumable by the run below
    predict(src, out, model=(LocalModel(3), CARD), resume=resume, **CPU)
    assert out.read_bytes() == reference.read_bytes()
    assert sorted(p.name for p in out.parent.iterdir()) == ["map.tif"]
