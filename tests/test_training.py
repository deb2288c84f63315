import numpy as np
import pytest
import torch

from lale_geo.datasets import ClassTable, Sample
from lale_geo.training import CropSampler, TrainConfig, Trainer, card_fields_for, dice_loss, lr_factor
from lale_geo.weights import load_weights


def toy_samples(n=3, size=96, seed=0):
    """Images whose class is readable from colour: a learnable task."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(n):
        mask = np.zeros((size, size), np.uint8)
        mask[:, size // 2:] = 1
        mask[rng.integers(0, size, 20), rng.integers(0, size, 20)] = 255
        image = np.where(mask[None] == 1, 200, 40).astype(np.uint8).repeat(3, 0)
        image = np.clip(image + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)
        samples.append(Sample(f"s{i}", image, mask))
    return samples


TABLE = ClassTable("toy", ("dark", "bright"), ((0, 0, 0), (255, 255, 255)), None, (), (),
                   {"train": ("t",), "val": ("v",)})


def test_dice_loss_is_zero_for_perfect_and_ignores_ignore_pixels():
    target = torch.tensor([[[0, 1], [1, 255]]])
    perfect = torch.nn.functional.one_hot(target.clamp(max=1), 2).permute(0, 3, 1, 2).float() * 50
    perfect[0, :, 1, 1] = torch.tensor([0.0, 50.0])  # wrong, but on an ignore pixel
    assert float(dice_loss(perfect, target)) == pytest.approx(0.0, abs=1e-3)
    assert float(dice_loss(-perfect, target)) > 0.5  # all wrong (the +1 smoothing keeps it < 1)


def test_crop_sampler_keeps_image_and_mask_aligned():
    sampler = CropSampler(toy_samples(), crop=32, seed=1)
    images, masks = sampler.batch(16)
    assert images.shape == (16, 3, 32, 32) and masks.shape == (16, 32, 32)
    labelled = masks != 255
    bright = images.mean(1) > 0.45
    assert ((masks == 1) == bright)[labelled].mean() > 0.97


def test_lr_schedule_warms_up_and_decays_to_zero():
    assert lr_factor(0.0, 0.1) < 0.01 and lr_factor(0.1, 0.1) == pytest.approx(1.0)
    assert lr_factor(1.0, 0.1) == pytest.approx(0.0, abs=1e-9)
    values = [lr_factor(p, 0.1) for p in np.linspace(0.1, 1, 50)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_a_few_steps_reduce_the_loss_and_write_valid_weights(tmp_path):
    torch.manual_seed(0)
    config = TrainConfig(crop=64, batch_size=4, lr=3e-3, max_steps=30, time_budget_s=600, val_every=30,
                         tile_size=64, overlap=16)
    trainer = Trainer(config, TABLE, toy_samples(), toy_samples(1, seed=9), tmp_path / "toy")
    fixed = trainer.sampler.batch(4)
    x = (torch.from_numpy(fixed[0]) - trainer.mean) / trainer.std
    from lale_geo.training import segmentation_loss
    with torch.no_grad():
        before = float(segmentation_loss(trainer.model.eval()(x), torch.from_numpy(fixed[1])))
    card = trainer.run(card_fields_for(config, TABLE, "toy", "lale-geo train --test", "/data"))
    with torch.no_grad():
        after = float(segmentation_loss(trainer.model.eval()(x), torch.from_numpy(fixed[1])))
    assert after < 0.7 * before
    assert card.training["steps"] == 30 and card.metrics["macro_f1"] > 0.5
    model, loaded = load_weights(tmp_path / "toy.json")
    assert loaded == card and (tmp_path / "toy.ckpt").exists()


def test_resume_continues_from_the_checkpoint(tmp_path):
    config = TrainConfig(crop=32, batch_size=2, max_steps=6, val_every=3, tile_size=64, overlap=16)
    fields = card_fields_for(config, TABLE, "toy", "lale-geo train", "/d")
    short = TrainConfig(**{**config.__dict__, "max_steps": 3})
    first = Trainer(short, TABLE, toy_samples(), toy_samples(1), tmp_path / "w")
    first.run(fields)
    second = Trainer(config, TABLE, toy_samples(), toy_samples(1), tmp_path / "w")
    second.load_checkpoint()
    assert second.step == 3
    second.run(fields)
    assert second.step == 6


def test_train_and_predict_four_band_geotiffs_end_to_end(tmp_path):
    """Another sensor: 4-band uint16 GeoTIFFs with value labels -> weights whose card records the bands,
    the input range and measured normalisation -> a map of a new scene."""
    import json

    import rasterio
    from click.testing import CliRunner
    from rasterio.transform import Affine

    from lale_geo.cli.main import cli
    from lale_geo.pipeline import predict

    (tmp_path / "d" / "a" / "images").mkdir(parents=True)
    (tmp_path / "d" / "a" / "masks").mkdir()
    (tmp_path / "d" / "classes.json").write_text(json.dumps({
        "name": "s2", "bands": ["blue", "green", "red", "nir"], "input_range": [0, 10000],
        "classes": [{"id": 0, "name": "water", "value": 80}, {"id": 1, "name": "tree", "value": 10}],
        "splits": {"train": ["a"], "val": ["a"]}}))
    grid = {"crs": "EPSG:32633", "transform": Affine(10, 0, 0, 0, -10, 0), "width": 64, "height": 64}
    water = np.arange(64)[None, :].repeat(64, 0) < 32
    image = np.where(water[None], 500, 4000).astype(np.uint16).repeat(4, 0)
    for folder, data, count, dtype in (("images", image, 4, "uint16"),
                                       ("masks", np.where(water, 80, 10)[None].astype(np.uint8), 1, "uint8")):
        with rasterio.open(tmp_path / "d" / "a" / folder / "s.tif", "w", driver="GTiff", count=count, dtype=dtype,
                           **grid) as dst:
            dst.write(data)
    result = CliRunner().invoke(cli, ["train", "--data", str(tmp_path / "d"), "--out", str(tmp_path / "w"),
                                      "--max-steps", "4", "--val-every", "4", "--crop", "32", "--batch-size", "2",
                                      "--tile-size", "32", "--overlap", "8"])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "w.json").read_text())
    assert card["bands"] == ["blue", "green", "red", "nir"] and card["input_range"] == [0, 10000]
    assert len(card["mean"]) == 4 and card["mean"][0] == pytest.approx((500 + 4000) / 2 / 10000, rel=0.05)
    summary = predict(tmp_path / "d" / "a" / "images" / "s.tif", tmp_path / "map.tif",
                      weights=tmp_path / "w.safetensors", device="cpu", engine="torch")
    assert summary.scaling.startswith("weights' input range") and sum(summary.class_pixels.values()) == 64 * 64
