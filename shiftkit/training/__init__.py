"""Training and evaluation of the classifier (torch and timm are imported lazily: the CLI starts fast).

- ``models.py``: timm models (the only module of the package that imports timm): create, load, predict.
- ``loader.py``: the manifest, splits and synth table as training items; decoding into the uint8
  cache; the augmentation; the worker-process Dataset and DataLoader.
- ``batches.py``: batches on the device (the loader's, or assembled from the cache with one
  batched affine), and the :class:`Feed` that says where and how they reach the model.
- ``pixels.py``: the decoded-image store shared by the learning curve's trainings.
- ``checkpoint.py``: model files, resume points and the dvclive logger.
- ``train.py``: the two-phase transfer-learning loop (the ``train`` stage).
- ``evaluate.py``: the predictions table: writing it (the ``evaluate`` stage) and reading it back.
"""

from __future__ import annotations

from shiftkit.core.lazy import lazy_exports

# (the stage functions are ``shiftkit.training.train.train`` and ``shiftkit.training.evaluate.evaluate``:
# a package attribute cannot be both the module and the function of the same name)

_EXPORTS = {
    "TrainResult": "shiftkit.training.train",
    "select_items": "shiftkit.training.train",
    "build_data": "shiftkit.training.train",
    "phase_plan": "shiftkit.training.train",
    "params_hash": "shiftkit.training.train",
    "EvalResult": "shiftkit.training.evaluate",
    "read_predictions": "shiftkit.training.evaluate",
    "resolve_predictions": "shiftkit.training.evaluate",
    "check_predictions": "shiftkit.training.evaluate",
    "STATE_NAME": "shiftkit.training.checkpoint",
    "write_model": "shiftkit.training.checkpoint",
    "open_live": "shiftkit.training.checkpoint",
    "load_resume_point": "shiftkit.training.checkpoint",
    "create_model": "shiftkit.training.models",
    "load_trained": "shiftkit.training.models",
    "predict": "shiftkit.training.models",
    "read_inputs": "shiftkit.training.loader",
    "read_tables": "shiftkit.training.loader",
    "Tables": "shiftkit.training.loader",
    "items": "shiftkit.training.loader",
    "labels_of": "shiftkit.training.loader",
    "targets": "shiftkit.training.loader",
    "build_cache": "shiftkit.training.loader",
    "Augment": "shiftkit.training.loader",
    "ImageDataset": "shiftkit.training.loader",
    "make_loader": "shiftkit.training.loader",
    "DeviceBatches": "shiftkit.training.batches",
    "LoaderBatches": "shiftkit.training.batches",
    "Feed": "shiftkit.training.batches",
    "resolve_device": "shiftkit.training.batches",
    "PixelStore": "shiftkit.training.pixels",
    "write_store": "shiftkit.training.pixels",
    "TrainParams": "shiftkit.training.params",
    "EvaluateParams": "shiftkit.training.params",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
