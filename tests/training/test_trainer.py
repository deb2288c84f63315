import json

import numpy as np
import pytest
import torch

from lale_geo.errors import WeightsError
from lale_geo.training.datasets import ClassTable, Sample
from lale_geo.training.trainer import (
    CropSampler,
    TrainConfig,
    Trainer,
    card_fields_for,
    dice_loss,
    initial_model,
    lr_factor,
)
from lale_geo.weights import load_weights, random_weights, save_weights


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
    from lale_geo.training.trainer import segmentation_loss
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


@pytest.mark.parametrize("in_memory_mb", ["2048", "0"])  # 0: the scene is read window by window
def test_train_and_predict_four_band_geotiffs_end_to_end(tmp_path, in_memory_mb):
    """Another sensor: 4-band uint16 GeoTIFFs with value labels -> weights whose card records the bands,
    the input range and measured normalisation -> a map of a new scene."""
    import json

    import rasterio
    from click.testing import CliRunner
    from rasterio.transform import Affine

    from lale_geo.cli.main import cli
    from lale_geo.inference.predict import predict

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
                                      "--tile-size", "32", "--overlap", "8", "--in-memory-mb", in_memory_mb])
    assert result.exit_code == 0, result.output
    card = json.loads((tmp_path / "w.json").read_text())
    assert card["bands"] == ["blue", "green", "red", "nir"] and card["input_range"] == [0, 10000]
    assert len(card["mean"]) == 4 and card["mean"][0] == pytest.approx((500 + 4000) / 2 / 10000, rel=0.05)
    summary = predict(tmp_path / "d" / "a" / "images" / "s.tif", tmp_path / "map.tif",
                      weights=tmp_path / "w.safetensors", device="cpu", engine="torch")
    assert summary.scaling.startswith("weights' input range") and sum(summary.class_pixels.values()) == 64 * 64


def _scene_dataset(root, height=300, width=260):
    """A 3-band GeoTIFF scene with a nodata hole (value 0, rows 100-139 x cols 200-249) and a label raster
    (values 10/20, 0 = ignore in its top-left 5 x 7 corner) on its grid."""
    import json

    import rasterio
    from rasterio.transform import Affine

    rng = np.random.default_rng(3)
    (root / "a" / "images").mkdir(parents=True)
    (root / "a" / "masks").mkdir()
    (root / "classes.json").write_text(json.dumps({
        "name": "scene", "classes": [{"id": 0, "name": "low", "value": 10}, {"id": 1, "name": "high", "value": 20}],
        "ignore": [0], "splits": {"train": ["a"], "val": ["a"]}}))
    image = rng.integers(1, 256, (3, height, width)).astype(np.uint8)
    labels = np.where(image.mean(0) > 127, 20, 10).astype(np.uint8)
    labels[:5, :7] = 0
    image[:, 100:140, 200:250] = 0
    grid = {"driver": "GTiff", "crs": "EPSG:32633", "transform": Affine(10, 0, 0, 0, -10, 0), "width": width,
            "height": height, "tiled": True, "blockxsize": 64, "blockysize": 64}
    with rasterio.open(root / "a" / "images" / "s.tif", "w", count=3, dtype="uint8", nodata=0, **grid) as dst:
        dst.write(image)
    with rasterio.open(root / "a" / "masks" / "s.tif", "w", count=1, dtype="uint8", **grid) as dst:
        dst.write(labels, 1)
    return ClassTable.read(root / "classes.json")


def test_scenes_read_by_windows_train_and_evaluate_like_scenes_in_memory(tmp_path):
    """A scene over the in-memory limit is read window by window: same crops, same scores; its nodata
    pixels are labelled ignore either way, filled as predict fills them, and not scored."""
    from lale_geo.inference.engines import TorchEngine
    from lale_geo.training.datasets import RasterSample, load_split
    from lale_geo.training.evaluation import Tiling, evaluate
    from lale_geo.training.trainer import normalisation_for
    from tests.helpers import LocalModel

    table = _scene_dataset(tmp_path)
    [held] = load_split(tmp_path, table, "train", bands=3)
    [windowed] = load_split(tmp_path, table, "train", bands=3, in_memory_limit_mb=0)
    assert isinstance(held, Sample) and isinstance(windowed, RasterSample) and windowed.shape == held.shape
    assert held.valid is not None and (~held.valid).sum() == 40 * 50 and (held.mask[100:140, 200:250] == 255).all()
    for crop in (64, 400):  # inside the scene, and larger than it (padded)
        a, b = CropSampler([held], crop, seed=5).batch(6), CropSampler([windowed], crop, seed=5).batch(6)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    engine = TorchEngine(LocalModel(num_classes=2, radius=1), (0.5,) * 3, (0.25,) * 3, device="cpu")
    scores_held = evaluate(engine, [held], ["low", "high"], Tiling(96, 32), mean=(0.5,) * 3)
    scores_windowed = evaluate(engine, [windowed], ["low", "high"], Tiling(96, 32), mean=(0.5,) * 3)
    assert scores_held.confusion_matrix == scores_windowed.confusion_matrix
    assert sum(map(sum, scores_held.confusion_matrix)) == 300 * 260 - 5 * 7 - 40 * 50  # ignore, nodata out
    table_rgbn = ClassTable("x", ("a", "b"), ((0, 0, 0), (1, 1, 1)), None, (), (), {}, bands=("b1", "b2", "b3"))
    mean, std = normalisation_for(table_rgbn, [windowed])  # from a decimated read of ~800 pixels
    exact = held.image.reshape(3, -1) / 255
    assert mean == pytest.approx(exact.mean(1), abs=0.03) and std == pytest.approx(exact.std(1), abs=0.03)


def test_unknown_label_values_in_a_windowed_scene_fail_at_load(tmp_path):
    import rasterio

    from lale_geo.errors import DatasetError
    from lale_geo.training.datasets import load_split

    table = _scene_dataset(tmp_path)
    with rasterio.open(tmp_path / "a" / "masks" / "s.tif", "r+") as dst:
        dst.write(np.full((1, 1), 99, np.uint8), 1, window=rasterio.windows.Window(200, 250, 1, 1))
    with pytest.raises(DatasetError, match="s.tif: mask values not in class table 'scene': 99"):
        load_split(tmp_path, table, "train", bands=3, in_memory_limit_mb=0)


def test_crop_sampler_draws_several_sizes_with_equal_pixels_per_batch():
    sampler = CropSampler(toy_samples(size=128), crop=32, seed=3, crop_sizes=[32, 64], scale_jitter=0.3,
                          strong_photometric=True)
    shapes = {sampler.batch(16)[0].shape for _ in range(12)}
    assert shapes == {(16, 3, 32, 32), (4, 3, 64, 64)}
    images, masks = sampler.batch(16)
    labelled = masks != 255
    assert ((masks == 1) == (images.mean(1) > 0.45))[labelled].mean() > 0.9


def test_ema_weights_are_what_is_validated_saved_and_resumed(tmp_path):
    config = TrainConfig(crop=32, batch_size=2, max_steps=4, val_every=2, tile_size=64, overlap=16, ema=0.9,
                         crop_max=64, scale_jitter=0.2, strong_photometric=True)
    fields = card_fields_for(config, TABLE, "toy", "lale-geo train", "/d")
    trainer = Trainer(config, TABLE, toy_samples(), toy_samples(1), tmp_path / "w")
    card = trainer.run(fields)
    live = trainer.model.state_dict()
    ema = trainer.ema.module.state_dict()
    assert any(not torch.equal(live[k], ema[k]) for k in live)  # the average is not the live weights
    assert card.training["ema"] == 0.9 and card.training["crop_max"] == 64
    resumed = Trainer(config, TABLE, toy_samples(), toy_samples(1), tmp_path / "w")
    resumed.load_checkpoint()
    assert all(torch.equal(ema[k], resumed.ema.module.state_dict()[k]) for k in ema)
    assert resumed.pixels_seen == trainer.pixels_seen > 0


def test_init_from_starts_at_the_given_weights_and_records_them(tmp_path):
    model, card = random_weights("lale_s1", num_classes=2, seed=7)
    fields = dict(json.loads(json.dumps(card.to_dict())), bands=list(TABLE.bands),
                  classes=[{"id": i, "name": n, "colour": [i, i, i]} for i, n in enumerate(TABLE.class_names)])
    saved = save_weights(model, fields, tmp_path / "start")
    initial, recorded = initial_model(str(tmp_path / "start.safetensors"), "lale_s1", TABLE)
    assert recorded == {"init_from": {"name": saved.name, "sha256": saved.sha256}}
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in initial.state_dict().items())
    assert initial.training
    with pytest.raises(WeightsError, match="init_from=.*this run trains lale_s2"):
        initial_model(str(tmp_path / "start.safetensors"), "lale_s2", TABLE)


def test_the_cards_mean_and_std_and_its_domain_profile_are_one_statistic_of_the_valid_pixels():
    from lale_geo.inference.domain import profile_from_samples
    from lale_geo.training.trainer import normalisation_for

    rng = np.random.default_rng(3)
    image = rng.integers(0, 1000, (2, 300, 310)).astype(np.uint16)
    valid = np.ones((300, 310), bool)
    valid[:100] = False
    image[:, :100] = 65535  # nodata far outside the data: counted, it would pull the means to about 0.67
    sample = Sample("s", image, np.zeros((300, 310), np.uint8), valid)
    table = ClassTable("x", ("a",), ((0, 0, 0),), None, (), (), {}, bands=("b1", "b2"), input_range=(0.0, 1000.0))
    mean, std = normalisation_for(table, [sample])
    profile = profile_from_samples([sample], table.input_range, "test", None, "none")
    assert profile.band_mean == tuple(round(m, 4) for m in mean) and profile.band_std == tuple(round(s, 4) for s in std)
    kept = image[:, valid] / 1000
    assert mean == pytest.approx(kept.mean(1), abs=0.04) and max(mean) < 0.58
