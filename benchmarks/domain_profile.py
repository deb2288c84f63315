"""The domain profile of the shipped Dubai weights' training data, printed as JSON (the card's "domain").

    python benchmarks/domain_profile.py [--data ../shared/data/dubai-aerial] [--split train] [--card CARD.json]

Loads the training split with its class table and measures, on [0, 1]-scaled pixels (input range 0-255,
as in training), the pooled band mean/std and the spread of per-image means and stds across images
(lale_geo.inference.domain.profile_from_samples). The pixel size range is the sensor class, not a measurement:
the dataset carries no geotransform.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lale_geo.inference.domain import profile_from_samples
from lale_geo.training.datasets import load_split, resolve_class_table

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "dubai-aerial"
SENSOR = "VHR RGB satellite/aerial (MBRSC, Dubai)"
PIXEL_SIZE_M = (0.3, 2.5)
NOTE = ("The dataset carries no geotransform and its ground sample distance is undocumented; 0.3-2.5 m is "
        "the range of the sensor class (very-high-resolution satellite and aerial RGB, judged from the "
        "imagery), not a measurement.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--split", default="train")
    parser.add_argument("--card", type=Path, help="Also store the profile in this weights card (its 'domain').")
    args = parser.parse_args()
    table = resolve_class_table(args.data)
    samples = load_split(args.data, table, args.split)
    profile = profile_from_samples(samples, table.input_range, SENSOR, PIXEL_SIZE_M, NOTE)
    print(json.dumps(profile.to_dict(), indent=2))
    if args.card:  # the card's sha256 covers the tensors only: adding the profile keeps it valid
        card = json.loads(args.card.read_text())
        card["domain"] = profile.to_dict()
        args.card.write_text(json.dumps(card, indent=2) + "\n")


if __name__ == "__main__":
    main()
