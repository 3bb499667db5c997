"""Models that tune a dbgym environment: the `Model` protocol and `load_model`.

- `Model` (protocol.py): `initialize`, `pick_action`, `update`, `save`; what a model gets.
- `sample_mask` (masks.py): an `info["action_mask"]` in the form `space.sample(mask=)` takes.
- `load_model(name, **kwargs)`, `available_models()`, `load(path)` (registry.py): the
  built-ins "random" (random_model.py) and "default" (default_model.py), and third-party
  models registered as entry points in the "dbgym.models" group.

See docs/models.md.
"""

from __future__ import annotations

from dbgym.models.default_model import DefaultModel
from dbgym.models.masks import sample_mask
from dbgym.models.protocol import Model, read_model_file, write_model_file
from dbgym.models.random_model import RandomModel
from dbgym.models.registry import ENTRY_POINT_GROUP, available_models, load, load_model

__all__ = [
    "ENTRY_POINT_GROUP",
    "DefaultModel",
    "Model",
    "RandomModel",
    "available_models",
    "load",
    "load_model",
    "read_model_file",
    "sample_mask",
    "write_model_file",
]
