"""`sample_mask(space, mask)`: an action mask in the exact form gymnasium's
`space.sample(mask=...)` takes.

dbgym environments put the mask of the next action in `info["action_mask"]`: for the
holistic Dict action a dict of per-part masks (None for the knob Box), for the index
MultiBinary an int8 array (0: must be 0, 1: must be 1, 2: free), for the hint
MultiDiscrete the allowed choices of each slot. gymnasium is strict about the containers
(a MultiDiscrete mask must be a tuple of int8 arrays, one per entry; a Dict mask must have
every key), so this module accepts the natural array forms as well and converts them:

- a MultiDiscrete mask as one array of shape `nvec.shape + (h,)` (every entry having h
  choices), or nested lists/tuples of per-entry arrays; bool or other integer dtypes are
  cast to int8;
- a Discrete mask as any 1-D integer or bool array of length n;
- a MultiBinary mask as any integer array (cast to int8);
- a Dict mask with parts left out: those parts are unmasked (None).

Anything else is passed on as it is, for gymnasium's own checks to refuse.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

from dbgym.errors import InvalidArgumentError


def _int8(mask: Any) -> Any:
    array = np.asarray(mask)
    if array.dtype == np.bool_ or np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int8)
    return mask


def _multi_discrete(nvec: Any, mask: Any) -> Any:
    """The nested-tuple form for the (sub)array `nvec` of a MultiDiscrete."""
    if isinstance(nvec, np.ndarray) and nvec.ndim > 0:
        if isinstance(mask, np.ndarray) and mask.ndim > 0 and len(mask) == len(nvec):
            return tuple(_multi_discrete(n, m) for n, m in zip(nvec, mask, strict=True))
        if isinstance(mask, list | tuple) and len(mask) == len(nvec):
            return tuple(_multi_discrete(n, m) for n, m in zip(nvec, mask, strict=True))
        return mask
    return _int8(mask)


def sample_mask(space: spaces.Space[Any], mask: Any) -> Any:
    """`mask` in the form `space.sample(mask=...)` takes (see the module docstring); None
    stays None. InvalidArgumentError for a Dict mask that is not a mapping or names parts
    the space does not have."""
    if mask is None:
        return None
    if isinstance(space, spaces.Dict):
        if not isinstance(mask, Mapping):
            raise InvalidArgumentError(
                f"action mask: the action space is a Dict with parts {list(space.spaces)}; "
                f"its mask must be a dict of per-part masks, got {type(mask).__name__}"
            )
        unknown = sorted(str(k) for k in mask if k not in space.spaces)
        if unknown:
            raise InvalidArgumentError(
                f"action mask: parts {unknown} are not in the action space "
                f"(its parts: {list(space.spaces)})"
            )
        return {key: sample_mask(part, mask.get(key)) for key, part in space.spaces.items()}
    if isinstance(space, spaces.Tuple) and isinstance(mask, list | tuple):
        if len(mask) != len(space.spaces):
            raise InvalidArgumentError(
                f"action mask: the Tuple space has {len(space.spaces)} parts, the mask {len(mask)}"
            )
        return tuple(sample_mask(part, m) for part, m in zip(space.spaces, mask, strict=True))
    if isinstance(space, spaces.MultiDiscrete):
        return _multi_discrete(space.nvec, mask)
    if isinstance(space, spaces.Discrete | spaces.MultiBinary):
        return _int8(mask)
    return mask
