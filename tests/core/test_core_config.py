"""workbench.core.config: strict keys, YAML round trips, overrides, typed coercion, profiles."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest
import yaml

from workbench.core import Config, ConfigError, WorkbenchError, parse_overrides, resolve_profile


@dataclass
class Optim(Config):
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    milestones: list[int] = field(default_factory=list)
    schedule: Literal["constant", "cosine"] = "constant"


@dataclass
class Model(Config):
    backbone: str = "resnet18"
    width: int = 64
    dropout: Optional[float] = None
    pretrained: bool = False
    stages: tuple[int, ...] = (1, 2)
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class Experiment(Config):
    seed: int = 0
    name: str = "run"
    train: Optim = field(default_factory=Optim)
    model: Model = field(default_factory=Model)
    views: Literal[1, 4, 12] = 12

    PROFILES = {
        "smoke": {"train": {"lr": 1e-2}, "model": {"width": 8}},
        "quick": {"model": {"width": 32}},
        "full": {"train": {"milestones": [1000, 2000]}},
    }

    def validate(self) -> None:
        if self.model.width <= 0:
            raise ConfigError(f"model.width must be positive, got {self.model.width}")


# ------------------------------------------------------------------------------------ strict keys
def test_unknown_top_level_key_names_closest_valid_key():
    with pytest.raises(ConfigError) as ei:
        Experiment.from_dict({"sede": 1})
    msg = str(ei.value)
    assert "'sede'" in msg and "did you mean 'seed'?" in msg and "Experiment" in msg
    assert isinstance(ei.value, WorkbenchError)


def test_unknown_nested_key_names_closest_key_and_location():
    with pytest.raises(ConfigError, match=r"unknown config key 'lrr' in Experiment\.train; did you mean 'lr'\?"):
        Experiment.from_dict({"train": {"lrr": 0.1}})
    with pytest.raises(ConfigError, match="did you mean 'width'"):
        Experiment().with_overrides(["model.widht=3"])


def test_unknown_key_without_a_close_match_lists_valid_keys():
    with pytest.raises(ConfigError) as ei:
        Experiment.from_dict({"zzzzzz": 1})
    assert "did you mean" not in str(ei.value) and "valid: seed, name, train, model, views" in str(ei.value)


def test_profiles_are_not_fields():
    assert "PROFILES" not in Experiment().to_dict()
    with pytest.raises(ConfigError):
        Experiment.from_dict({"PROFILES": {}})


# ------------------------------------------------------------------------------------ YAML round trip
def test_yaml_round_trip_preserves_every_type(tmp_path):
    cfg = Experiment(seed=7, name="007", train=Optim(lr=3e-4, betas=(0.5, 0.99), milestones=[10, 20],
                                                     schedule="cosine"),
                     model=Model(dropout=0.25, pretrained=True, stages=(3, 4, 6), extra={"w": 0.5}), views=4)
    p = tmp_path / "config.yaml"
    cfg.save(p)
    back = Experiment.load(p)
    assert back == cfg
    assert isinstance(back.train.betas, tuple) and isinstance(back.model.stages, tuple)
    assert back.name == "007" and back.train.lr == 3e-4
    data = yaml.safe_load(p.read_text())
    assert data["train"]["betas"] == [0.5, 0.99] and data["model"]["dropout"] == 0.25
    assert Experiment.from_dict(cfg.to_dict()) == cfg


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        Experiment.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: [1,\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        Experiment.load(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("seed: 1\ntrain:\n  lr: 0.1\n  milstones: [1]\n")
    with pytest.raises(ConfigError) as ei:
        Experiment.load(typo)
    assert str(typo) in str(ei.value) and "did you mean 'milestones'" in str(ei.value)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping at the top level"):
        Experiment.load(top)


def test_load_with_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    Experiment(seed=1).save(p)
    cfg = Experiment.load(p, overrides=["train.lr=3e-4", "seed=5"])
    assert cfg.seed == 5 and cfg.train.lr == 3e-4


# ------------------------------------------------------------------------------------ overrides
def test_parse_overrides_nests_dotted_keys():
    assert parse_overrides(["train.lr=3e-4", "model.width=32", "name=a=b"]) == {
        "train": {"lr": "3e-4"}, "model": {"width": "32"}, "name": "a=b"}
    assert parse_overrides({"train.lr": 0.1, "seed": 2}) == {"train": {"lr": 0.1}, "seed": 2}
    assert parse_overrides(None) == {}
    with pytest.raises(ConfigError, match="must look like key.sub=value"):
        parse_overrides(["train.lr"])
    with pytest.raises(ConfigError, match="empty key"):
        parse_overrides(["=3"])
    with pytest.raises(ConfigError, match="conflicts"):
        parse_overrides(["train=1", "train.lr=2"])


def test_cli_overrides_are_coerced_to_field_types():
    cfg = Experiment().with_overrides(["train.lr=3e-4", "seed=3", "model.pretrained=true",
                                       "model.dropout=0.1", "train.milestones=[100, 200]",
                                       "train.betas=[0.5, 0.9]", "model.stages=[2,2,2]", "views=4",
                                       "train.schedule=cosine", "name=12", "model.extra={a: 1}"])
    assert cfg.train.lr == 3e-4 and isinstance(cfg.train.lr, float)
    assert cfg.seed == 3 and cfg.model.pretrained is True and cfg.model.dropout == 0.1
    assert cfg.train.milestones == [100, 200] and cfg.train.betas == (0.5, 0.9)
    assert cfg.model.stages == (2, 2, 2) and cfg.views == 4 and cfg.train.schedule == "cosine"
    assert cfg.name == "12" and cfg.model.extra == {"a": 1.0}
    # a single value for a list field becomes a one-element list
    assert Experiment().with_overrides(["train.milestones=50"]).train.milestones == [50]
    # notebook parameters: a flat mapping with native values
    nb = Experiment().with_overrides({"train.lr": 0.05, "model.width": 16, "model.dropout": None})
    assert nb.train.lr == 0.05 and nb.model.width == 16 and nb.model.dropout is None


@pytest.mark.parametrize("override, msg", [
    ("seed=1.5", "expected an int"),
    ("seed=abc", "expected an int"),
    ("train.lr=fast", "expected a float"),
    ("model.pretrained=maybe", "expected a bool"),
    ("views=5", r"'5' is not one of \[1, 4, 12\]"),
    ("train.schedule=linear", "is not one of"),
    ("train.betas=[0.5]", "expected 2 items"),
    ("model.width=none", "expected an int"),
    ("train=3", "expected a mapping for Optim"),
    ("model.width=-1", "model.width must be positive"),
])
def test_bad_override_values_raise_config_error(override, msg):
    with pytest.raises(ConfigError, match=msg):
        Experiment().with_overrides([override])


def test_optional_accepts_none_spellings():
    for text in ("none", "null", "~", "None"):
        assert Experiment().with_overrides([f"model.dropout={text}"]).model.dropout is None
    with pytest.raises(ConfigError, match="None is not allowed"):
        Experiment.from_dict({"seed": None})


def test_with_overrides_returns_a_copy():
    base = Experiment()
    new = base.with_overrides(["train.lr=1"])
    assert base.train.lr == 1e-3 and new.train.lr == 1.0


# ------------------------------------------------------------------------------------ profiles
def test_profiles_apply_on_defaults_then_overrides_win():
    smoke = Experiment.for_profile("smoke")
    assert smoke.train.lr == 1e-2 and smoke.model.width == 8 and smoke.seed == 0
    assert Experiment.for_profile("quick").model.width == 32 and Experiment.for_profile("quick").train.lr == 1e-3
    assert Experiment.for_profile("full").train.milestones == [1000, 2000]
    o = Experiment.for_profile("smoke", overrides=["model.width=4", "train.milestones=[5]"])
    assert o.model.width == 4 and o.train.lr == 1e-2 and o.train.milestones == [5]


def test_profile_names_and_auto(monkeypatch):
    import torch

    assert resolve_profile("SMOKE") == "smoke"
    assert resolve_profile("auto") == ("full" if torch.cuda.is_available() else "quick")
    monkeypatch.setenv("WB_PROFILE", "smoke")
    assert resolve_profile(None) == "smoke" and Experiment.for_profile(None).model.width == 8
    with pytest.raises(ConfigError, match="unknown profile 'smok'; did you mean 'smoke'"):
        resolve_profile("smok")


def test_class_without_profiles_uses_defaults():
    assert Optim.for_profile("full") == Optim()
