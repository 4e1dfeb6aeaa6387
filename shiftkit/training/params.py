"""params.yaml sections of train and evaluate: frozen dataclasses, defaults as in params.yaml."""

from __future__ import annotations

from shiftkit.core.config import (
    BOOL,
    COUNT,
    DEVICE,
    NONNEG,
    SEED,
    WORKERS,
    Interval,
    Options,
    ParamsSection,
    Text,
    frozen,
    param,
    section,
)
from shiftkit.core.errors import ConfigError

# --- train ----------------------------------------------------------------------------------------


@section("train")
@frozen
class TrainParams(ParamsSection):
    """Transfer learning with a timm CNN (``shiftkit train``): model, phases, data pipeline, device."""

    model: str = param("resnet10t", Text("a timm model name"))  # any name in timm.list_models()
    # true: timm hub weights; a checkpoint path; false: from scratch
    pretrained: bool | str = param(False, BOOL, Text("a checkpoint path"))
    img_size: int = param(32, Interval(int, 8, 4096))  # square input size in pixels
    channels: int = param(3, Options((1, 3)))  # 1 (grey) or 3 (RGB)
    batch_size: int = param(64, COUNT)  # per process
    head_epochs: int = param(1, NONNEG)  # phase (a): frozen backbone, new head (skipped when not pretrained)
    finetune_epochs: int = param(3, NONNEG)  # phase (b): unfrozen layers at a low learning rate
    head_lr: float = param(1e-3, Interval(float, 0, None, "neither"))
    finetune_lr: float = param(1e-3, Interval(float, 0, None, "neither"))  # pretrained weights: lower (1e-4)
    unfreeze_stages: int = param(0, NONNEG)  # phase (b): 0 unfreezes everything, K the last K stages
    layer_decay: float = param(1.0, Interval(float, 0, 1, "right"))  # layer-wise lr decay in phase (b); 1.0: off
    weight_decay: float = param(0.05, Interval(float, 0, None))
    label_smoothing: float = param(0.0, Interval(float, 0, 1, "left"))
    augment: bool = param(True, BOOL)
    translate: float = param(0.08, Interval(float, 0, 1, "left"))  # augmentation: shift as a fraction of the side
    scale: float = param(0.1, Interval(float, 0, 1, "left"))  # augmentation: zoom in/out by up to this fraction
    rotate: float = param(10.0, Interval(float, 0, 180))  # augmentation: rotation in degrees, up to
    hflip: bool = param(False, BOOL)  # augmentation: horizontal flip (wrong for digits and text)
    seed: int = param(0, SEED)
    device: str = param("auto", DEVICE)  # auto (CUDA when present, else CPU), cpu, cuda, cuda:N
    amp: bool = param(True, BOOL)  # mixed precision on CUDA (bf16 where supported, else fp16 + grad scaler)
    channels_last: bool = param(True, BOOL)  # memory format on CUDA
    workers: int = param(0, WORKERS, speed_only=True)  # data-loader worker processes (0: the training process)
    threads: int = param(0, Interval(int, 0, 4096), speed_only=True)  # torch CPU threads; 0 keeps torch's default
    # cache and cache_mb pick the batch path (the device-side one needs the cache), whose
    # augmentation draws differ from the worker loader's: they change results, not only speed
    cache: bool = param(True, BOOL)  # keep decoded, resized images in memory (when they fit)
    cache_mb: int = param(2048, NONNEG)  # memory allowed for that cache
    eval_batches: int = param(0, NONNEG)  # dev batches evaluated after each epoch for the metrics; 0 = all

    def check_together(self) -> None:
        if self.head_epochs + self.finetune_epochs == 0:
            raise ConfigError(
                "The 'train.head_epochs' and 'train.finetune_epochs' parameters are both 0; nothing to train."
            )


# --- evaluate -------------------------------------------------------------------------------------


@section("evaluate")
@frozen
class EvaluateParams(ParamsSection):
    """Predictions over the splits (``shiftkit evaluate``)."""

    train_sample: int = param(5000, COUNT)  # at most this many train images (and as many synth children)
    batch_size: int = param(256, COUNT)
    seed: int = param(0, SEED)
    device: str = param("auto", DEVICE)  # auto, cpu, cuda, cuda:N
    workers: int = param(0, WORKERS, speed_only=True)  # data-loader worker processes
