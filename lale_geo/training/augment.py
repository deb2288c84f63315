"""Training augmentations for one crop: scale jitter (resample a larger or smaller window to the crop
size) and photometric jitter on [0, 1] pixels. Pure numpy + torch resampling, no file I/O.

Why these: LALE's attention is global within a tile, so a network trained on one crop size and one
ground-sample distance learns to depend on that context; varying both at training time is what makes
a pixel's class depend less on the tile it is predicted in."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def jittered_size(crop: int, jitter: float, rng: np.random.Generator) -> int:
    """Window size to read for a ``crop`` output: ``crop * s`` with ``s`` log-uniform in
    [1 / (1 + jitter), 1 + jitter] (zoom in and out equally often)."""
    if jitter <= 0:
        return crop
    s = float(np.exp(rng.uniform(-np.log1p(jitter), np.log1p(jitter))))
    return max(8, int(round(crop * s)))


def resample(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(bands, h, w) float image and (h, w) class ids resampled to ``size`` x ``size``: bilinear with
    antialiasing for pixels, nearest for labels (ignore stays ignore)."""
    if image.shape[1:] == (size, size):
        return image, mask
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    m = torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64))[None, None].float()
    m = F.interpolate(m, size=(size, size), mode="nearest")[0, 0]
    return x.numpy(), m.numpy().astype(mask.dtype)


def photometric(image: np.ndarray, rng: np.random.Generator, strong: bool) -> np.ndarray:
    """Brightness/contrast jitter (+-0.2, p=0.3) as before; ``strong`` adds, each with its own chance,
    per-band gain, saturation, gamma and sensor noise (values stay in [0, 1])."""
    if not strong:
        if rng.random() < 0.3:
            alpha, beta = 1 + rng.uniform(-0.2, 0.2), rng.uniform(-0.2, 0.2)
            image = np.clip(image * alpha + beta, 0.0, 1.0)
        return image
    image = image.astype(np.float32, copy=True)
    if rng.random() < 0.8:
        alpha, beta = 1 + rng.uniform(-0.3, 0.3), rng.uniform(-0.25, 0.25)
        image = image * alpha + beta
    if rng.random() < 0.5:  # white balance / sensor differences
        image = image * rng.uniform(0.9, 1.1, size=(image.shape[0], 1, 1)).astype(np.float32)
    if rng.random() < 0.5 and image.shape[0] >= 3:
        grey = image.mean(0, keepdims=True)
        image = grey + (image - grey) * rng.uniform(0.6, 1.4)
    image = np.clip(image, 0.0, 1.0)
    if rng.random() < 0.4:
        image = image ** np.float32(np.exp(rng.uniform(np.log(0.7), np.log(1.4))))
    if rng.random() < 0.3:
        image = image + rng.normal(0, rng.uniform(0.005, 0.03), image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0)
