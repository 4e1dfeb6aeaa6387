"""Domain adaptation inside a training: the mitigation arms' losses on the same device path as
:func:`shiftkit.training.train.train_one_epoch` (AMP, channels-last, batches from the uint8 cache).

One :class:`AdaptSpec` says which method, with which fixed knobs, on which target images without
labels (the *pool*); :func:`attach` turns it into an :class:`Adapter` whose ``train_one_epoch``
replaces the plain one (same signature). The methods:

- ``dann`` (Ganin et al. 2016): a domain head behind a gradient-reversal layer whose coefficient
  follows 2 / (1 + exp(-10 p)) - 1 over training progress p; the domain loss is balanced (mean over
  source rows + mean over target rows) / 2. The head reads the first stage of the backbone at a
  quarter of the input side (:data:`DOMAIN_REDUCTION`; resnet: ``layer1``), averaged over space:
  the feature extractor that is made domain-invariant is the network up to there (Ganin et al.
  place the head after any layer; here the label predictor is the rest of the backbone).
- ``coral`` (Sun & Saenko 2016, DomainBed's form): the squared distance between the source and
  target features' means plus that between their covariances.
- ``selftrain`` (FixMatch-style): pseudo-labels from the current model on the (weakly augmented)
  pool batch, kept above a confidence threshold, taught to a strongly augmented view.
- ``weighted``: each web row's loss weighted by the density ratio p_target(x) / p_web(x) of
  :mod:`shiftkit.synth.weighting` (capped at ``clip`` x the median), fitted on 8 x 8 thumbnails.

Design choices that make the adversarial and alignment losses work from scratch (a plain DANN with
one shared forward pass made a first probe worse): the source and the pool batch go through the
backbone in *separate* forward passes, each normalised by its own batch statistics, and each domain
keeps its own batch-norm running statistics: the domain-specific batch norm of DSBN (Chang et al.
2019). The model's own follow the pool batches alone; the source pass updates a second set, the
source's (:mod:`shiftkit.training.bnstats`, swapped in for that pass), saved beside the model, so
that evaluation normalises the target with the target's statistics and the web and synth images
with theirs (``weighted`` has no pool pass: its one set follows the labelled batches, as the
baseline's). Both are kept the way the baseline keeps its own (the same momentum, one
update per step), never re-estimated more precisely afterwards: a final re-estimation over many
pool batches was a gain of its own over the baseline's running statistics even without any shift
(5 points of dev error on a no-shift pair after 27 steps), which the comparison then credited to
the arm. The pool batch is half the labelled batch (cost <= 1.5x); the domain weight ramps up
with the schedule (after ``warmup``, a share of the training without reversal); DANN's domain head
has two hidden layers with dropout (256 wide: 1024, as in Ganin et al.'s Office runs, cost 2.3x
the baseline's training) and its learning rate anneals with the backbone's (cosine).

Why the first stage and not the pooled features (MNIST-M-style probe of benchmarks/arms.py, resnet10t
from scratch, 32 px, 3 epochs, 93 steps; dev error, baseline 69.7%): with the head on the pooled
features the reversal made the error worse the stronger it was (weight 1: 75.0%, 0.3: 63.3%,
0.1: 55.3%; the per-domain batch norm alone, weight 1e-6: 56.3%; the head's learning rate 10x:
76.0% at weight 1, 62.0% at 0.3). At 10x and weight 1 the domain head's accuracy fell to 52%,
near chance, while the dev error rose: the pooled features were aligned across domains, but not
class by class. On a middle stage (``layer2``, 1/8)
54.0%, on the first (``layer1``, 1/4) 48.3%, both together 52.0%, on the stem (1/2) 50.7%:
a colour-and-texture shift is a low-level one, and aligning low-level features leaves the later
layers, which the labels train, free to stay class-discriminative. A model whose stages timm does
not list (no ``feature_info``) keeps the pooled features. Over three sessions 23 variants more (the head's
learning rate, input, conditioning (CDAN), weight, warmup and loss form; the pool's batch size and augmentation;
entropy, information-maximisation, nuclear-norm and pseudo-label terms on the pool; random convolutions) were
no better on two draws of that pair: their figures are in the README ("Mitigations that learn from unlabelled
target images"), beside the web-size trend (the cut 31% / 21% / 26% at 2,000 web images, 41% / 36% at 5,000,
35% / 37% at 10,000). The default's 48.3 is itself a favourable draw of the training (59.0 and 60.3 with
``train.seed`` 1 and 2): dann's training noise, about 6 points, is as large as any variant's effect.

Labels of the pool never reach a loss: the pool is a table of ``image_id`` and ``abspath`` only
(:func:`pool_rows` drops every other column) and its batches carry the target -1.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from shiftkit.core.errors import ConfigError, DataError
from shiftkit.training import bnstats
from shiftkit.training.checkpoint import EpochStats

METHODS = ("dann", "coral", "selftrain", "weighted")
POOL_SHARE = {"dann": 0.5, "coral": 0.5, "selftrain": 0.25}  # pool batch / labelled batch (cost bound)
HEAD_WIDTH = 256  # dann: the domain head's two hidden layers (1024 as for Office: 2.3x the baseline's cost)
DOMAIN_REDUCTION = 4  # dann: the head reads the first backbone stage at 1/4 of the input side (resnet: layer1)
NEVER = ("dev", "test", "bridge", "held_out_copy")  # splits whose images never join the pool


@dataclass(frozen=True)
class AdaptSpec:
    """One arm's adaptation: ``method`` (one of :data:`METHODS`), its fixed knobs, the pool.

    ``pool``: target images without labels (columns image_id, abspath); ``source_domains``:
    the domains whose rows the domain loss and the weights treat as the source (web, synth)."""

    method: str
    pool: pl.DataFrame
    target_domain: str = "target"
    weight: float = 1.0  # dann / coral / selftrain: the loss weight at the end of the ramp
    threshold: float = 0.95  # selftrain: pseudo-label confidence
    clip: float = 10.0  # weighted: cap, times the median weight
    warmup: float = 0.0  # dann: share of the training before the reversal starts (its ramp spans the rest)
    seed: int = 0
    selection: str = "fixed in params, not tuned on any target label"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"Unknown adaptation {self.method!r}; expected one of {', '.join(METHODS)}.")
        if set(self.pool.columns) != {"image_id", "abspath"}:
            raise DataError("The unlabelled pool must carry image_id and abspath only (no labels).")

    def meta(self) -> dict[str, Any]:
        """What model.json records about the adaptation."""
        return {"method": self.method, "pool_images": self.pool.height, "weight": self.weight,
                "threshold": self.threshold, "clip": self.clip, "warmup": self.warmup, "selection": self.selection}


# ---------------------------------------------------------------------------------------------
# the pool of target images without labels


def pool_rows(manifest: pl.DataFrame, manifest_path, splits: pl.DataFrame, target_domain: str) -> pl.DataFrame:
    """The target images a training may read without labels: the target's train split (in or out of
    the budget: ``train`` and ``unused``) and the ``unlabelled`` split. Never dev, test or bridge.
    Columns: image_id, abspath (labels dropped here)."""
    from shiftkit.core import files as io

    spl = splits.select("image_id", "split")
    man = manifest.select("image_id", "path", "root", "domain").join(spl, on="image_id", how="inner")
    keep = ((pl.col("domain") == target_domain) & pl.col("split").is_in(["train", "unused"])) | (
        pl.col("split") == "unlabelled")
    rows = man.filter(keep).sort("image_id")
    paths = [str(p) for p in io.image_paths(rows, manifest_path)]
    return rows.select("image_id", pl.Series("abspath", paths, dtype=pl.String))


def folder_rows(path: str | Path, splits: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Images of a folder (recursively) or a CSV/parquet listing (column ``path``, as ingest reads one;
    :func:`shiftkit.training.unlabelled.image_files`) as pool rows, minus any whose bytes are a dev,
    test or bridge image of ``splits``; returns (rows, dropped).

    Raises:
        InputPathError: when the path does not exist; DataError: when it holds no image.
    """
    from shiftkit.training.unlabelled import image_files

    files = image_files(path, option="--unlabelled")
    ids = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    held = set(splits.filter(pl.col("split").is_in(list(NEVER)))["image_id"].to_list())
    rows = pl.DataFrame({"image_id": ids, "abspath": [str(f.resolve()) for f in files]})
    kept = rows.filter(~pl.col("image_id").is_in(list(held))).unique("image_id", keep="first").sort("image_id")
    return kept, rows.height - kept.height


# ---------------------------------------------------------------------------------------------
# the losses


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coeff * grad, None


def reverse_gradient(x: torch.Tensor, coeff: float) -> torch.Tensor:
    """Identity forward; the gradient times ``-coeff`` backward (the gradient-reversal layer)."""
    return _Reverse.apply(x, coeff)


def ramp(progress: float, warmup: float = 0.0) -> float:
    """DANN's coefficient schedule 2 / (1 + exp(-10 p)) - 1: 0 at the start, near 1 at the end; with a
    ``warmup`` share, 0 until then and the schedule over the rest (p = (progress - warmup) / (1 - warmup))."""
    p = (progress - warmup) / (1.0 - warmup) if warmup < 1 else 0.0
    return 2.0 / (1.0 + math.exp(-10.0 * min(max(p, 0.0), 1.0))) - 1.0


def coral_loss(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    """Squared distance of the feature means plus that of the covariances (DomainBed's CORAL)."""
    fs, ft = fs.float(), ft.float()
    ms, mt = fs.mean(0, keepdim=True), ft.mean(0, keepdim=True)
    cs = (fs - ms).T @ (fs - ms) / max(fs.shape[0] - 1, 1)
    ct = (ft - mt).T @ (ft - mt) / max(ft.shape[0] - 1, 1)
    return (ms - mt).pow(2).mean() + (cs - ct).pow(2).mean()


def domain_head(features: int, width: int = HEAD_WIDTH) -> nn.Module:
    """The domain classifier on pooled features (one logit: target): two hidden layers with dropout."""
    return nn.Sequential(nn.Linear(features, width), nn.ReLU(inplace=True), nn.Dropout(0.5),
                         nn.Linear(width, width), nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(width, 1))


@contextlib.contextmanager
def target_statistics(bns: list[nn.Module], update: bool) -> Iterator[None]:
    """Inside ``with target_statistics(bns, False)`` a train-mode forward pass normalises by its batch's
    statistics but leaves the batch-norm running statistics as they are (momentum 0); with ``True``
    it updates them as usual. The running statistics thus follow one domain's batches (DSBN)."""
    saved = [m.momentum for m in bns]
    if not update:
        for m in bns:
            m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom in zip(bns, saved, strict=True):
            m.momentum = mom


def batch_norms(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def domain_stage(model: nn.Module, reduction: int = DOMAIN_REDUCTION) -> tuple[str, int] | None:
    """(module name, channels) of the model's first stage whose output is at 1/``reduction`` of the
    input side or smaller (timm's ``feature_info``); None when the model does not list its stages."""
    for f in getattr(model, "feature_info", None) or []:
        if isinstance(f, dict) and int(f.get("reduction", 0)) >= reduction and f.get("module"):
            return str(f["module"]), int(f["num_chs"])
    return None


def pooled(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The backbone's pooled features (timm's ``forward_head(..., pre_logits=True)``)."""
    return model.forward_head(model.forward_features(x), pre_logits=True)


def strong_view(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A strong augmentation of normalised images: random contrast and brightness per image and a
    cutout square of half the side (the draws come from ``gen`` on the CPU)."""
    n, _, h, w = x.shape
    u = torch.rand((n, 4), generator=gen)
    scale = (1 + (u[:, 0] * 2 - 1) * 0.5).view(n, 1, 1, 1).to(x.device, x.dtype)
    shift = ((u[:, 1] * 2 - 1) * 0.5).view(n, 1, 1, 1).to(x.device, x.dtype)
    ys, xs = (u[:, 2] * h).long(), (u[:, 3] * w).long()
    rr, cc = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    hole = ((rr - ys.view(n, 1, 1)).abs() < h // 4) & ((cc - xs.view(n, 1, 1)).abs() < w // 4)
    return (x * scale + shift) * (~hole).unsqueeze(1).to(x.device, x.dtype)


def thumbnails(cache: torch.Tensor, side: int = 8) -> np.ndarray:
    """(N, side*side*C + 2C) features of uint8 (N, H, W, C) images: area-mean thumbnails plus the
    channels' means and standard deviations (the density-ratio model's input)."""
    x = cache.permute(0, 3, 1, 2).float()
    thumb = nn.functional.adaptive_avg_pool2d(x, side).flatten(1)
    return torch.cat([thumb, x.mean((2, 3)), x.std((2, 3))], 1).numpy().astype(np.float64)


def importance_weights(src: torch.Tensor, pool: torch.Tensor, clip: float, seed: int) -> np.ndarray:
    """Capped density-ratio weights (mean 1) of the source images ``src`` against the pool."""
    from shiftkit.synth.weighting import fit_weighting

    fs, ft = thumbnails(src), thumbnails(pool)
    return fit_weighting(fs, ft, feature_size=8, clip=clip, seed=seed).weights(fs)


# ---------------------------------------------------------------------------------------------
# the epoch


class Adapter:
    """The adapted epoch (``train_one_epoch``) of one run: the plain loss plus the method's."""

    def __init__(self, spec: AdaptSpec, model: nn.Module, classes: int, source: torch.Tensor, *,
                 weights: torch.Tensor, pool_batches, total_steps: int, lr: float, smoothing: float) -> None:
        self.spec, self.classes, self.source, self.w = spec, classes, source, weights
        self.pool_batches, self.total, self.step = pool_batches, max(total_steps, 1), 0
        self.smoothing, self._iter, self._epoch = smoothing, None, -1
        self.head = self.head_opt = self.head_sched = None
        self.bns = batch_norms(model)
        # the source's running statistics, apart from the model's own (the target's); weighted: one set
        self.source_bn = None if spec.method == "weighted" else bnstats.copy_of(model)
        self.stage, self._stage_out, self._keeping = None, None, False
        if spec.method == "dann":
            dim = int(model.num_features)
            found = domain_stage(model)
            if found is not None:
                self.stage, dim = found
                model.get_submodule(self.stage).register_forward_hook(self._keep_stage)
            self.head = domain_head(dim).to(source.device)
            self.head_opt = torch.optim.AdamW(self.head.parameters(), lr=lr, weight_decay=0.0)
            self.head_sched = torch.optim.lr_scheduler.CosineAnnealingLR(self.head_opt, T_max=self.total)
        self.seconds = 0.0

    def meta(self) -> dict[str, Any]:
        return {**self.spec.meta(), **({"domain_features": self.stage or "pooled"} if self.head else {})}

    def _keep_stage(self, module: nn.Module, args: Any, out: torch.Tensor) -> None:
        if self._keeping:  # only the adapted step's own passes, never validation's
            self._stage_out = out

    def _domain_features(self, fs: torch.Tensor) -> torch.Tensor:
        """What the domain head reads of the pass just made: the stage's output averaged over space
        (the pooled features ``fs`` when the model lists no stages)."""
        if self.stage is None:
            return fs
        out, self._stage_out = self._stage_out, None
        return out.mean((2, 3))

    def _pool_batch(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:  # a fresh pool order each epoch, a function of the epoch (resume-safe)
            self._epoch, self._round = epoch, 0
            self.pool_batches.set_epoch(epoch * 1000)
            self._iter = iter(self.pool_batches)
        try:
            return next(self._iter)[0]
        except StopIteration:
            self._round += 1
            self.pool_batches.set_epoch(epoch * 1000 + self._round)
            self._iter = iter(self.pool_batches)
            return next(self._iter)[0]

    def _loss(self, model: nn.Module, x: torch.Tensor, enc: torch.Tensor, epoch: int, b: int):
        idx, y = enc // self.classes, enc % self.classes
        coeff = ramp(self.step / self.total, self.spec.warmup if self.spec.method == "dann" else 0.0)
        method = self.spec.method
        self._keeping = method == "dann"
        with bnstats.swapped(model, self.source_bn):  # the source pass updates the source's statistics
            fs = pooled(model, x)
        hs = self._domain_features(fs) if method == "dann" else fs
        logits = model.get_classifier()(fs)
        ce = nn.functional.cross_entropy(logits, y, reduction="none", label_smoothing=self.smoothing)
        w = self.w[idx] if method == "weighted" else torch.ones_like(ce)
        loss = (ce * w).sum() / w.sum()
        if method == "weighted":
            return loss, logits, y
        xu = self._pool_batch(epoch)
        src = self.source[idx]
        if method == "selftrain":
            with torch.no_grad():
                probs = torch.softmax(model(xu).float(), 1)
            conf, pseudo = probs.max(1)
            from shiftkit.training.batches import batch_generator

            strong = strong_view(xu, batch_generator(self.spec.seed, epoch, 7, b))
            with target_statistics(self.bns, False):
                lu = nn.functional.cross_entropy(model(strong), pseudo, reduction="none")
            return loss + self.spec.weight * coeff * (lu * (conf >= self.spec.threshold)).mean(), logits, y
        ft = pooled(model, xu)
        ht = self._domain_features(ft) if method == "dann" else ft
        self._keeping = False
        if not bool(src.any()):
            return loss, logits, y
        if method == "coral":
            return loss + self.spec.weight * coral_loss(fs[src], ft), logits, y
        ds = self.head(reverse_gradient(hs[src], coeff)).float().squeeze(1)
        dt = self.head(reverse_gradient(ht, coeff)).float().squeeze(1)
        bce = nn.functional.binary_cross_entropy_with_logits
        dom = 0.5 * (bce(ds, torch.zeros_like(ds)) + bce(dt, torch.ones_like(dt)))
        return loss + self.spec.weight * dom, logits, y

    def train_one_epoch(self, model: nn.Module, batches: Iterable, optim, criterion: nn.Module, feed, *,
                        on_step: Callable[[int, int, float], None] | None = None):
        """One pass over ``batches`` with the method's loss (``criterion`` is the plain loss's
        settings, applied here per row)."""
        import time

        stats, t0 = EpochStats(), time.perf_counter()
        loss_sum = torch.zeros((), dtype=torch.float64, device=feed.device)
        correct = torch.zeros((), dtype=torch.int64, device=feed.device)
        epoch = getattr(batches, "epoch", 0)
        self.step = epoch * len(batches)
        for b, (x, enc) in enumerate(batches):
            with torch.autocast(feed.device.type, dtype=feed.amp_dtype or torch.float32,
                                enabled=feed.amp_dtype is not None):
                loss, logits, y = self._loss(model, x, enc, epoch, b)
            optim.opt.zero_grad(set_to_none=True)
            if self.head_opt is not None:
                self.head_opt.zero_grad(set_to_none=True)
            optim.scaler.scale(loss).backward()
            optim.scaler.step(optim.opt)
            if self.head_opt is not None:
                optim.scaler.step(self.head_opt)
                self.head_sched.step()
            optim.scaler.update()
            optim.sched.step()
            self.step += 1
            n = y.shape[0]
            loss_sum += loss.detach().double() * n
            correct += (logits.detach().argmax(1) == y).sum()
            stats.count += n
            if on_step is not None:
                on_step(b, n, time.perf_counter() - t0)
        stats.loss_sum, stats.correct = float(loss_sum), float(correct)
        stats.seconds = time.perf_counter() - t0
        return stats


def attach(spec: AdaptSpec, model: nn.Module, tdata, train_items: pl.DataFrame, params, feed,
           cache: Callable[[pl.DataFrame], torch.Tensor], steps: int) -> Adapter:
    """The :class:`Adapter` of one run. Re-codes the labelled batches' targets as
    ``row * classes + label`` (so that each row's domain and weight are known in the loss) and builds
    the pool's batches (targets -1: no label) on the same device path.

    Raises:
        ConfigError: when the run is distributed or the images do not fit the decoded cache.
        DataError: when a method that reads the pool has none.
    """
    from shiftkit.training.batches import DeviceBatches
    from shiftkit.training.loader import Augment, UndecodableImage

    if feed.dist.world_size > 1:
        raise ConfigError(f"The {spec.method} arm does not run under torchrun yet; run it in one process.")
    if tdata.path != "device":
        raise ConfigError(f"The {spec.method} arm needs the decoded cache: set train.cache true and raise "
                          "train.cache_mb until the train, dev and unlabelled images fit.")
    if spec.pool.height < 2:
        raise DataError(f"The {spec.method} arm needs unlabelled target images (the target's train images, the "
                        f"'unlabelled' split or --unlabelled); found {spec.pool.height}.")
    classes, batches = len(tdata.labels), tdata.batches
    n = batches.targets.shape[0]
    batches.targets = torch.arange(n, dtype=torch.int64) * classes + batches.targets
    source = torch.as_tensor((train_items["domain"] != spec.target_domain).to_numpy(), device=feed.device)
    try:
        pool_cache = cache(spec.pool)
    except UndecodableImage as exc:  # the loader's text assumes an ingested file; a pool image may not be one
        raise exc.retold(
            f"it is one of the {spec.method} arm's target images without labels (--unlabelled or the target's train "
            "split): remove or replace it (shiftkit ingest quarantines such files), then train again") from None
    weights = torch.ones(n, device=feed.device)
    if spec.method == "weighted":
        src = np.flatnonzero(source.cpu().numpy())
        if len(src) >= 2:
            w = importance_weights(batches.cache[torch.as_tensor(src)], pool_cache, spec.clip, spec.seed)
            weights[torch.as_tensor(src, device=feed.device)] = torch.as_tensor(w, dtype=torch.float32,
                                                                                   device=feed.device)
    augment = Augment(params.translate, params.scale, params.rotate, params.hflip) if params.augment else None
    share = POOL_SHARE.get(spec.method, 0.5)
    pool_b = DeviceBatches(pool_cache, np.full(spec.pool.height, -1), batch_size=max(2, int(params.batch_size * share)),
                           feed=feed.inputs, augment=augment, shuffle=True, seed=spec.seed + 1, drop_last=True)
    if len(pool_b) == 0:
        pool_b = DeviceBatches(pool_cache, np.full(spec.pool.height, -1), batch_size=spec.pool.height,
                               feed=feed.inputs, augment=augment, shuffle=True, seed=spec.seed + 1)
    return Adapter(spec, model, classes, source, weights=weights, pool_batches=pool_b, total_steps=steps,
                   lr=params.finetune_lr, smoothing=params.label_smoothing)
