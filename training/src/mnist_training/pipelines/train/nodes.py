"""Train the CNN: seeded, augmented, with a progress bar per epoch."""

from __future__ import annotations

import logging
import os
import random
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from tqdm import tqdm

from mnist_training.augmentation import BatchAugmenter
from mnist_training.handwriting_styles import styled_alternatives
from mnist_training.model import DigitCNN
from mnist_training.parameters import TrainParams

logger = logging.getLogger(__name__)


def resolve_device(requested: str) -> torch.device:
    """``auto`` picks CUDA when it is present; anything else is passed to torch as is."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def choose_num_threads(requested: int) -> int:
    """``0`` = one thread per two cores (at least one). Torch's default, a thread per core,
    waits at thread barriers whenever other work holds a core: on 2 cores, 4 epochs took 7 s
    with 2 threads and 11 s with 1 on a quiet machine, but 36 s with 2 and 16 s with 1 next
    to two busy processes."""
    return requested or max(1, (os.cpu_count() or 2) // 2)


def normalized_tensor(images: np.ndarray, normalization: dict[str, float]) -> torch.Tensor:
    """uint8 ``[N, 28, 28]`` -> float32 ``[N, 1, 28, 28]`` in the model's input convention."""
    pixels = torch.from_numpy(images).float().unsqueeze(1) / 255.0
    return (pixels - normalization["mean"]) / normalization["std"]


@torch.no_grad()
def predict_labels(
    model: nn.Module, images: np.ndarray, normalization: dict[str, float], batch_size: int = 512
) -> np.ndarray:
    """Predicted digits for uint8 images, on whatever device the model lives on."""
    model.eval()
    device = next(model.parameters()).device
    inputs = normalized_tensor(images, normalization)
    return torch.cat([model(chunk.to(device)).argmax(1).cpu() for chunk in inputs.split(batch_size)]).numpy()


def accuracy(model: nn.Module, split: dict[str, np.ndarray], normalization: dict[str, float]) -> float:
    if len(split["labels"]) == 0:
        return float("nan")
    return float((predict_labels(model, split["images"], normalization) == split["labels"]).mean())


def train_model(
    train: dict[str, np.ndarray],
    validation: dict[str, np.ndarray],
    normalization: dict[str, float],
    params: TrainParams,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train a fresh ``DigitCNN`` and return it (on the CPU, in eval mode) with its history."""
    seed_everything(params.seed)
    device = resolve_device(params.device)
    torch.set_num_threads(choose_num_threads(params.num_threads))
    model = DigitCNN(**params.architecture.model_dump()).to(device)
    augment = BatchAugmenter(params.augmentation, params.seed) if params.augmentation.enabled else None
    # Each image beside a copy in another handwriting style (the image itself for most digits).
    styled = styled_alternatives(train["images"], train["labels"], params.seed) if augment else train["images"]
    images = torch.from_numpy(np.stack([train["images"], styled], axis=1))  # [N, 2, 28, 28] uint8
    loader = DataLoader(
        TensorDataset(images, torch.from_numpy(train["labels"])),
        batch_size=params.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(params.seed),
    )
    mean, std = normalization["mean"], normalization["std"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=params.learning_rate, epochs=params.epochs, steps_per_epoch=len(loader)
    )
    loss_fn = nn.CrossEntropyLoss(label_smoothing=params.label_smoothing)
    history = []
    logger.info(
        "Training on %s (%d CPU threads) for %d epochs (%d images)",
        device,
        torch.get_num_threads(),
        params.epochs,
        len(train["labels"]),
    )
    for epoch in range(1, params.epochs + 1):
        model.train()
        seen = correct = 0
        total_loss = 0.0
        bar = tqdm(loader, desc=f"epoch {epoch}/{params.epochs}", unit="batch", mininterval=1.0)
        for batch, labels in bar:
            pixels, styled_pixels = (batch.float() / 255.0).split(1, dim=1)
            if augment is not None:
                pixels = augment(pixels, styled_pixels)
            inputs, labels = ((pixels - mean) / std).to(device), labels.to(device)
            logits = model(inputs)
            loss = loss_fn(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            seen += len(labels)
            total_loss += loss.item() * len(labels)
            correct += (logits.argmax(1) == labels).sum().item()
            bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.4f}")
        val_accuracy = accuracy(model, validation, normalization)
        history.append(
            {"epoch": epoch, "loss": total_loss / seen, "train_accuracy": correct / seen, "val_accuracy": val_accuracy}
        )
        logger.info(
            "epoch %d: loss %.4f, train acc %.4f, val acc %.4f", epoch, total_loss / seen, correct / seen, val_accuracy
        )
    model = model.cpu().eval()
    return model, {"epochs": history, "device": str(device)}
