"""dbgym.models: load_model (built-ins, errors, entry points of a really installed
distribution), save/load, the random model under action masks and seeds, the default model."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces

from dbgym.errors import InvalidArgumentError
from dbgym.models import (
    DefaultModel,
    Model,
    RandomModel,
    available_models,
    load,
    load_model,
    sample_mask,
)

OBS: dict[str, Any] = {"x": np.zeros(2, dtype=np.float32)}


def dict_space() -> spaces.Dict:
    return spaces.Dict(
        {
            "knobs": spaces.Box(0.0, 1.0, shape=(3,), dtype=np.float32),
            "indexes": spaces.MultiBinary(6),
            "hints": spaces.MultiDiscrete([4, 4, 4]),
        }
    )


def step(model: Model, space: spaces.Space[Any], info: dict[str, Any]) -> Any:
    action = model.pick_action(space, OBS)
    model.update(OBS, action, 0.0, OBS, False, False, info)
    return action


def test_builtins_load_and_are_models() -> None:
    assert {"default", "random"} <= set(available_models())
    random_model = load_model("random", seed=3)
    default_model = load_model("default")
    assert isinstance(random_model, RandomModel) and random_model.seed == 3
    assert isinstance(default_model, DefaultModel)
    assert isinstance(random_model, Model) and isinstance(default_model, Model)


def test_unknown_name_says_the_closest_and_every_name() -> None:
    with pytest.raises(InvalidArgumentError) as err:
        load_model("randon")
    text = str(err.value)
    assert "unknown model 'randon'" in text
    assert "did you mean 'random'?" in text
    assert "default" in text and "dbgym.models" in text


def test_wrong_keyword_is_a_caller_mistake() -> None:
    with pytest.raises(InvalidArgumentError, match=r"model 'random'.*keywords it takes: seed"):
        load_model("random", sede=1)
    with pytest.raises(InvalidArgumentError, match=r"model 'default'.*keywords it takes: none"):
        load_model("default", seed=1)
    with pytest.raises(InvalidArgumentError, match="seed must be an int"):
        load_model("random", seed="1")


@pytest.fixture
def installed_tuner(tmp_path: Path) -> Iterator[Path]:
    """A real distribution `my_tuner` 0.1 on a temporary sys.path entry: a module and its
    dist-info (METADATA, entry_points.txt), found by importlib.metadata like any installed
    package."""
    (tmp_path / "my_tuner.py").write_text(
        textwrap.dedent(
            '''
            """A third-party model: always the middle of a Box, counting its updates."""
            import json

            import numpy as np


            class MyTuner:
                def __init__(self, level=0.5):
                    self.level = level
                    self.updates = 0

                def initialize(self, observations, info):
                    self.updates = 0

                def pick_action(self, action_space, observations):
                    return np.full(action_space.shape, self.level, dtype=action_space.dtype)

                def update(self, observations, action, reward, next_observations,
                           terminated, truncated, info):
                    self.updates += 1

                def save(self, path):
                    from dbgym.models import write_model_file
                    write_model_file(path, "my-tuner", {"level": self.level})


            def make_tuner(level=0.75):
                return MyTuner(level=level)


            def not_a_model():
                return object()
            '''
        )
    )
    dist = tmp_path / "my_tuner-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-tuner\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[dbgym.models]\nmy-tuner = my_tuner:MyTuner\nmy-factory = my_tuner:make_tuner\n"
        "broken-tuner = my_tuner:not_a_model\nrandom = my_tuner:MyTuner\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("my_tuner", None)


def test_entry_point_of_an_installed_distribution(installed_tuner: Path) -> None:
    assert {"my-tuner", "broken-tuner", "random"} <= set(available_models())
    model = load_model("my-tuner", level=0.25)
    assert type(model).__module__ == "my_tuner"
    box = spaces.Box(0.0, 1.0, shape=(2,), dtype=np.float32)
    model.initialize(OBS, {})
    action = step(model, box, {})
    assert box.contains(action) and np.allclose(action, 0.25)
    assert model.updates == 1  # type: ignore[attr-defined]
    path = installed_tuner / "model.json"
    model.save(path)
    again = load(path)
    assert type(again).__name__ == "MyTuner" and again.level == 0.25  # type: ignore[attr-defined]
    with pytest.raises(InvalidArgumentError, match=r"keywords it takes: level"):
        load_model("my-tuner", lvl=1)
    with pytest.raises(TypeError, match=r"broken-tuner.*my-tuner 0\.1.*not a dbgym Model"):
        load_model("broken-tuner")


def test_entry_point_factories_and_builtins_first(installed_tuner: Path) -> None:
    made = load_model("my-factory")  # a function called with the keywords
    assert type(made).__name__ == "MyTuner" and made.level == 0.75  # type: ignore[attr-defined]
    assert load_model("my-factory", level=0.1).level == 0.1  # type: ignore[attr-defined]
    # the distribution also registers "random": the built-in wins
    assert isinstance(load_model("random", seed=1), RandomModel)
    assert available_models().count("random") == 1


def test_entry_points_leave_with_their_sys_path_entry(installed_tuner: Path) -> None:
    assert "my-tuner" in available_models()
    sys.path.remove(str(installed_tuner))
    try:
        assert "my-tuner" not in available_models()
        with pytest.raises(InvalidArgumentError, match="unknown model 'my-tuner'"):
            load_model("my-tuner")
    finally:
        sys.path.insert(0, str(installed_tuner))


def test_save_load_round_trip(tmp_path: Path) -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("random", {"seed": 42}),
        ("random", {}),
        ("default", {}),
    ]
    for i, (name, kwargs) in enumerate(cases):
        model = load_model(name, **kwargs)
        path = tmp_path / f"{i}.json"
        model.save(path)
        data = json.loads(path.read_text())
        assert data["name"] == name and data["format"] == "dbgym.model"
        again = load(path)
        assert type(again) is type(model)
        if name == "random":
            assert again.seed == kwargs.get("seed")  # type: ignore[attr-defined]
    space = dict_space()
    a, b = load_model("random", seed=42), load(tmp_path / "0.json")
    for model in (a, b):
        model.initialize(OBS, {})
    for _ in range(5):
        x, y = a.pick_action(space, OBS), b.pick_action(space, OBS)
        assert all(np.array_equal(x[k], y[k]) for k in x)


def test_load_rejects_files_that_are_not_model_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="no such model file"):
        load(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(InvalidArgumentError, match="not a dbgym model file"):
        load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"format": "dbgym.model", "version": 9}))
    with pytest.raises(InvalidArgumentError, match="version 9 is not supported"):
        load(tmp_path / "y.json")
    (tmp_path / "z.json").write_text(
        json.dumps({"format": "dbgym.model", "version": 1, "name": "nope", "kwargs": {}})
    )
    with pytest.raises(InvalidArgumentError, match="unknown model 'nope'"):
        load(tmp_path / "z.json")


def test_random_never_sets_masked_bits_of_multibinary() -> None:
    space = spaces.MultiBinary(8)
    mask = np.array([0, 2, 0, 1, 2, 0, 2, 0], dtype=np.int8)
    model = load_model("random", seed=7)
    model.initialize(OBS, {"action_mask": mask})
    picks = np.array([step(model, space, {"action_mask": mask}) for _ in range(200)])
    assert (picks[:, mask == 0] == 0).all()
    assert (picks[:, mask == 1] == 1).all()
    free = picks[:, mask == 2]
    assert (free == 0).any(axis=0).all() and (free == 1).any(axis=0).all()


def test_random_honours_dict_masks_and_follows_the_latest_info() -> None:
    space = dict_space()
    first = {
        "knobs": None,
        "indexes": np.array([2, 2, 2, 0, 0, 0], dtype=np.int8),
        "hints": tuple(np.array([0, 1, 0, 1], dtype=np.int8) for _ in range(3)),
    }
    second = {**first, "indexes": np.array([0, 0, 0, 2, 2, 2], dtype=np.int8)}
    model = load_model("random", seed=1)
    model.initialize(OBS, {"action_mask": first})
    for _ in range(100):
        action = model.pick_action(space, OBS)
        assert space.contains(action)
        assert (action["indexes"][3:] == 0).all()
        assert set(action["hints"].tolist()) <= {1, 3}
    model.update(OBS, action, 0.0, OBS, False, False, {"action_mask": second})
    for _ in range(100):
        action = model.pick_action(space, OBS)
        assert (action["indexes"][:3] == 0).all()
    model.update(OBS, action, 0.0, OBS, False, False, {})  # no mask: anything goes
    picks = np.array([model.pick_action(space, OBS)["indexes"] for _ in range(100)])
    assert picks[:, :3].any()


def test_random_takes_hint_masks_as_one_array_and_parts_left_out() -> None:
    """The hint mask as one (slots, choices) array (int8 or bool), the Dict mask without
    the knob part: both fine."""
    space = dict_space()
    allowed = np.zeros((3, 4), dtype=np.int8)
    allowed[0, 1] = allowed[1, [0, 3]] = allowed[2, 2] = 1
    for hints in (allowed, allowed.astype(bool)):
        model = load_model("random", seed=4)
        model.initialize(OBS, {"action_mask": {"hints": hints, "indexes": np.zeros(6, np.int8)}})
        picks = [model.pick_action(space, OBS) for _ in range(100)]
        assert all(space.contains(a) and not a["indexes"].any() for a in picks)
        chosen = np.array([a["hints"] for a in picks])
        assert (chosen[:, 0] == 1).all() and (chosen[:, 2] == 2).all()
        assert set(chosen[:, 1].tolist()) == {0, 3}
    multi = spaces.MultiDiscrete(np.array([[3, 3], [3, 3]]))
    model = load_model("random", seed=4)
    model.initialize(OBS, {"action_mask": np.eye(3, dtype=np.int8)[[[0, 1], [2, 2]]]})
    for _ in range(20):
        assert model.pick_action(multi, OBS).tolist() == [[0, 1], [2, 2]]


def test_sample_mask_forms() -> None:
    space = dict_space()
    mask = sample_mask(space, {"hints": np.ones((3, 4), dtype=bool)})
    assert mask["knobs"] is None and mask["indexes"] is None
    assert isinstance(mask["hints"], tuple) and len(mask["hints"]) == 3
    assert all(m.dtype == np.int8 and m.tolist() == [1] * 4 for m in mask["hints"])
    assert sample_mask(space, None) is None
    assert sample_mask(spaces.Discrete(3), [True, False, True]).dtype == np.int8
    with pytest.raises(InvalidArgumentError, match=r"parts \['index'\] are not in"):
        sample_mask(space, {"index": np.zeros(6, np.int8)})
    with pytest.raises(InvalidArgumentError, match="must be a dict of per-part masks"):
        sample_mask(space, np.zeros(6, np.int8))


def test_random_mask_that_does_not_fit_is_a_caller_mistake() -> None:
    space = dict_space()
    for mask in (
        {"indexes": np.full(5, 2, dtype=np.int8)},  # 5 bits for MultiBinary(6)
        {"hints": np.ones((3, 3), dtype=np.int8)},  # 3 choices for 4
        {"knobs": np.ones(3, dtype=np.int8)},  # a Box takes no mask
        {"indexs": np.full(6, 2, dtype=np.int8)},
    ):
        model = load_model("random", seed=1)
        model.initialize(OBS, {"action_mask": mask})
        with pytest.raises(InvalidArgumentError, match="model 'random'"):
            model.pick_action(space, OBS)


def test_random_is_deterministic_with_a_seed_and_leaves_the_space_alone() -> None:
    def run(seed: int | None, space: spaces.Space[Any]) -> list[Any]:
        model = load_model("random", seed=seed)
        model.initialize(OBS, {})
        return [step(model, space, {}) for _ in range(10)]

    space = dict_space()
    space.seed(123)
    expected = space.sample()
    space.seed(123)
    a, b, c = run(5, space), run(5, space), run(6, space)
    assert all(np.array_equal(x[k], y[k]) for x, y in zip(a, b, strict=True) for k in x)
    assert any(not np.array_equal(x[k], y[k]) for x, y in zip(a, c, strict=True) for k in x)
    got = space.sample()  # the environment's own RNG did not move
    assert all(np.array_equal(got[k], expected[k]) for k in got)
    unseeded = run(None, spaces.Discrete(1000)), run(None, spaces.Discrete(1000))
    assert unseeded[0] != unseeded[1]


def test_default_returns_the_default_action_of_the_info() -> None:
    space = dict_space()
    default: dict[str, Any] = {
        "knobs": np.array([0.1, 0.2, 0.3], dtype=np.float32),
        "indexes": np.zeros(6, dtype=np.int8),
        "hints": np.zeros(3, dtype=np.int64),
    }
    model = load_model("default")
    with pytest.raises(InvalidArgumentError, match="call initialize"):
        model.pick_action(space, OBS)
    model.initialize(OBS, {"default_action": default})
    for _ in range(3):
        action = step(model, space, {"action_mask": None})  # step infos carry no default
        assert space.contains(action)
        assert all(np.array_equal(action[k], default[k]) for k in default)
    action["knobs"][:] = 1.0  # the caller's copy: the next pick is still the default
    assert np.array_equal(model.pick_action(space, OBS)["knobs"], default["knobs"])
