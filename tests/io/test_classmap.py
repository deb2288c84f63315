"""Class maps' colours read as their classes: conventional display colours by class name."""

from __future__ import annotations

import pytest

from lale_geo.io.classmap import display_colour
from lale_geo.weights import load_card


@pytest.mark.parametrize(("name", "colour"), [
    ("Water", (30, 110, 220)), ("Open water", (30, 110, 220)), ("Vegetation", (40, 150, 50)),
    ("Trees", (40, 150, 50)), ("Building", (210, 40, 40)), ("Built-up", (210, 40, 40)), ("Road", (128, 128, 128)),
    ("Bare land", (225, 200, 140)), ("Land", (225, 200, 140)), ("Snow and ice", (240, 240, 250))])
def test_conventional_colours_by_name(name, colour):
    assert display_colour(name, (1, 2, 3)) == colour


def test_an_unknown_class_keeps_its_own_colour():
    assert display_colour("Moss", (1, 2, 3)) == (1, 2, 3)


def test_the_shipped_weights_draw_water_blue_and_vegetation_green():
    colours = {c.name: c.colour for c in load_card("lale_s1_dubai").classes}
    assert colours["Water"][2] > max(colours["Water"][:2])  # blue
    assert colours["Vegetation"][1] > max(colours["Vegetation"][0], colours["Vegetation"][2])  # green
    assert colours["Building"][0] > max(colours["Building"][1:])  # red
    assert colours == {name: display_colour(name, (0, 0, 0)) for name in colours}
