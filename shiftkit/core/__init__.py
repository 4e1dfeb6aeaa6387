"""The foundation every package stands on: errors, the quarantine reasons, table schemas, the params
machinery, file I/O and the console. Imports no other shiftkit package.

- ``reasons.py``: ``QuarantineReason``, why a file is in the quarantine (imports nothing from shiftkit).
- ``errors.py``: the exceptions a user's input can cause (``ShiftkitError`` and its kinds).
- ``schema.py``: column names and dtypes of every table shiftkit writes or reads.
- ``config.py``: the params machinery (``@section``, ``param``, constraints, loading and checking).
- ``files.py``: atomic writes, tables and JSON on disk, image paths of a manifest.
- ``console.py``: the rich console, progress bars and kept notes.

Names are imported on first use (PEP 562), so ``import shiftkit`` stays light.
"""

from __future__ import annotations

from shiftkit.core.lazy import lazy_exports

_EXPORTS: dict[str, str] = {
    "QUARANTINE_REASONS": "shiftkit.core.reasons",
    "QuarantineReason": "shiftkit.core.reasons",
    "CheckFailed": "shiftkit.core.errors",
    "ConfigError": "shiftkit.core.errors",
    "DataError": "shiftkit.core.errors",
    "ImageDecodeError": "shiftkit.core.errors",
    "InputPathError": "shiftkit.core.errors",
    "ModelError": "shiftkit.core.errors",
    "RegistryError": "shiftkit.core.errors",
    "SchemaError": "shiftkit.core.errors",
    "ShiftkitError": "shiftkit.core.errors",
    "Terminated": "shiftkit.core.errors",
    "conform": "shiftkit.core.schema",
    "empty": "shiftkit.core.schema",
    "HELD_OUT_COPY": "shiftkit.core.schema",
    "MANIFEST": "shiftkit.core.schema",
    "PREDICTIONS": "shiftkit.core.schema",
    "QUARANTINE": "shiftkit.core.schema",
    "SPLITS": "shiftkit.core.schema",
    "SPLITS_TABLE": "shiftkit.core.schema",
    "SYNTH": "shiftkit.core.schema",
    "Table": "shiftkit.core.schema",
    "UNLABELLED": "shiftkit.core.schema",
    "validate": "shiftkit.core.schema",
    "BOOL": "shiftkit.core.config",
    "Boolean": "shiftkit.core.config",
    "build": "shiftkit.core.config",
    "check_params": "shiftkit.core.config",
    "COUNT": "shiftkit.core.config",
    "DEVICE": "shiftkit.core.config",
    "Each": "shiftkit.core.config",
    "frozen": "shiftkit.core.config",
    "Interval": "shiftkit.core.config",
    "MAX_PARAMS_BYTES": "shiftkit.core.config",
    "NONNEG": "shiftkit.core.config",
    "Options": "shiftkit.core.config",
    "param": "shiftkit.core.config",
    "ParamsSection": "shiftkit.core.config",
    "parse_assignments": "shiftkit.core.config",
    "Pattern": "shiftkit.core.config",
    "section": "shiftkit.core.config",
    "section_class": "shiftkit.core.config",
    "section_names": "shiftkit.core.config",
    "SEED": "shiftkit.core.config",
    "SEED_MAX": "shiftkit.core.config",
    "show": "shiftkit.core.config",
    "speed_only_keys": "shiftkit.core.config",
    "Text": "shiftkit.core.config",
    "WORKERS": "shiftkit.core.config",
    "atomic_path": "shiftkit.core.files",
    "ensure_dir": "shiftkit.core.files",
    "image_paths": "shiftkit.core.files",
    "read_json": "shiftkit.core.files",
    "read_table": "shiftkit.core.files",
    "relative_root": "shiftkit.core.files",
    "replace_dir": "shiftkit.core.files",
    "write_bytes": "shiftkit.core.files",
    "write_json": "shiftkit.core.files",
    "write_table": "shiftkit.core.files",
    "write_text": "shiftkit.core.files",
    "current": "shiftkit.core.console",
    "enable_output": "shiftkit.core.console",
    "kept_notes": "shiftkit.core.console",
    "make_progress": "shiftkit.core.console",
    "note_kept": "shiftkit.core.console",
    "output_to": "shiftkit.core.console",
    "progress_enabled": "shiftkit.core.console",
    "rate_text": "shiftkit.core.console",
    "recording_kept": "shiftkit.core.console",
    "stderr_console": "shiftkit.core.console",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
