"""The model card is written from the version's own figures, and fits the registry."""

from __future__ import annotations

import json

from mnist_testkit.models import trained_model_dir
from mnist_training.model_card import render_model_card
from mnist_training.pipelines.track.nodes import MAX_DESCRIPTION, fit_description
from tests.test_tracking import CARD_SECTIONS


def current_version() -> tuple[dict, dict]:
    models = trained_model_dir()
    folder = models / (models / "CURRENT").read_text().strip()
    return json.loads((folder / "metadata.json").read_text()), json.loads((folder / "metrics.json").read_text())


def test_the_card_states_the_versions_figures_in_every_section():
    metadata, metrics = current_version()
    card = render_model_card(metadata, metrics)
    assert card.startswith(f"# Model card: mnist-cnn {metadata['version']}\n")
    for section in CARD_SECTIONS:
        assert f"\n## {section}\n" in card, section
    assert f"**{metadata['metrics']['test_accuracy'] * 100:.1f} %**" in card
    for variant, accuracy in metadata["metrics"]["robustness"].items():
        assert f"| {variant} | " in card and f"| {accuracy:.3f} | {metrics['floors'][variant]:.2f} |" in card
    weakest = min(metadata["metrics"]["robustness"].items(), key=lambda item: item[1])
    assert f"Weakest inputs measured: {weakest[0]} ({weakest[1]:.3f})" in card
    assert metadata["data"]["sha256"] in card and metadata["onnx_sha256"] in card and metadata["git_sha"] in card
    assert len(card) <= MAX_DESCRIPTION, "the registry would cut the default model's card"


def test_a_card_over_the_registrys_limit_is_cut_at_a_section_and_says_so():
    metadata, metrics = current_version()
    card = render_model_card(metadata, metrics) + "\n## Appendix\n\n" + "x" * MAX_DESCRIPTION
    cut = fit_description(card)
    assert len(cut) <= MAX_DESCRIPTION
    body, note = cut.split("\n\n(cut at 5,000 characters")
    assert card.startswith(body) and card[len(body) :].lstrip("\n").startswith("## "), "cut where a section starts"
    assert "\n## Known limits\n" in body and "## Appendix" not in body
    assert note.endswith("the whole card is MODEL_CARD.md in the version's artifacts)\n")
    assert fit_description("short") == "short"


def test_the_card_says_what_augmentation_the_version_was_trained_with():
    metadata, metrics = current_version()
    card = render_model_card(metadata, metrics)
    augmentation = metadata["params"]["augmentation"]
    assert f"rotation ≤ {augmentation['rotation_degrees']:g}°" in card
    assert f"blur {augmentation['blur_probability']:.0%}" in card
    plain = {**metadata, "params": {**metadata["params"], "augmentation": {**augmentation, "enabled": False}}}
    card = render_model_card(plain, metrics)
    assert "- Trained without augmentation." in card and "European styles" not in card
