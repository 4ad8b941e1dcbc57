"""Training-time augmentation: each effect does what it says, on real digits, reproducibly."""

from __future__ import annotations

import torch

from mnist_training.augmentation import BatchAugmenter
from mnist_training.parameters import AugmentationParams

NOTHING = {
    "rotation_degrees": 0,
    "translate_fraction": 0,
    "scale_delta": 0,
    "shear": 0,
    "elastic_alpha": 0,
    "stroke_width_probability": 0,
    "blur_probability": 0,
    "low_resolution_probability": 0,
    "background_probability": 0,
}


def batch(small_splits) -> torch.Tensor:
    return torch.from_numpy(small_splits[0]["images"][:64]).float().unsqueeze(1) / 255


def augment(small_splits, **effects: float) -> torch.Tensor:
    return BatchAugmenter(AugmentationParams(**{**NOTHING, **effects}), seed=1)(batch(small_splits))


def test_with_every_effect_off_the_batch_is_unchanged(small_splits):
    assert torch.allclose(augment(small_splits), batch(small_splits), atol=1e-5)


def test_the_defaults_change_every_image_reproducibly_and_stay_in_range(small_splits):
    first = BatchAugmenter(AugmentationParams(), seed=1)(batch(small_splits))
    again = BatchAugmenter(AugmentationParams(), seed=1)(batch(small_splits))
    assert torch.equal(first, again)
    assert first.shape == (64, 1, 28, 28) and first.min() >= 0 and first.max() <= 1
    assert ((first - batch(small_splits)).abs().amax(dim=(1, 2, 3)) > 0.1).all()


def test_stroke_width_changes_make_strokes_wider_or_narrower(small_splits):
    original = (batch(small_splits) > 0.5).sum(dim=(1, 2, 3))
    changed = (augment(small_splits, stroke_width_probability=1.0) > 0.5).sum(dim=(1, 2, 3))
    assert (changed != original).all()
    assert (changed > original).sum() > 20 and (changed < original).sum() > 5  # 70 % wider, 30 % thinner


def test_low_resolution_and_blur_take_detail_away(small_splits):
    def sharpness(images: torch.Tensor) -> torch.Tensor:
        return (images[..., 1:, :] - images[..., :-1, :]).abs().sum(dim=(1, 2, 3))

    original = sharpness(batch(small_splits))
    for effect in ("blur_probability", "low_resolution_probability"):
        softened = sharpness(augment(small_splits, **{effect: 1.0}))
        assert (softened < original).float().mean() > 0.95 and softened.sum() < 0.8 * original.sum(), effect


def test_the_background_is_grey_and_noisy_but_the_ink_stays_brightest(small_splits):
    photos = augment(small_splits, background_probability=1.0)
    corners = photos[..., :4, :4].mean(dim=(1, 2, 3))
    assert (corners > 0).all() and (photos.amax(dim=(1, 2, 3)) > corners + 0.5).all()


def test_geometry_moves_ink_without_losing_it(small_splits):
    moved = augment(small_splits, rotation_degrees=20, shear=0.35, elastic_alpha=1.0)
    original = batch(small_splits)
    assert ((moved - original).abs().sum(dim=(1, 2, 3)) > 5).all()
    ratio = moved.sum(dim=(1, 2, 3)) / original.sum(dim=(1, 2, 3))
    assert ((ratio > 0.6) & (ratio < 1.5)).all()  # elastic bends stretch or squeeze strokes a little


def test_a_share_of_the_batch_is_swapped_for_its_other_handwriting_style(small_splits):
    images = batch(small_splits)
    styled = 1 - images  # any stand-in that differs from every image
    params = AugmentationParams(**{**NOTHING, "style_probability": 0.5})
    out = BatchAugmenter(params, seed=1)(images, styled)
    swapped = torch.isclose(out, styled, atol=1e-4).flatten(1).all(dim=1)
    kept = torch.isclose(out, images, atol=1e-4).flatten(1).all(dim=1)
    assert (swapped ^ kept).all() and 16 <= int(swapped.sum()) <= 48
    assert torch.equal(out, BatchAugmenter(params, seed=1)(images, styled))
    none = AugmentationParams(**{**NOTHING, "style_probability": 0})
    assert torch.allclose(BatchAugmenter(none, seed=1)(images, styled), images, atol=1e-4)
