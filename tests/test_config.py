"""The cell config: names that fail at the door, validation, a stable hash, a JSON round trip."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from robustbench_interp.attacks import get_attack
from robustbench_interp.config import BENCHMARK_VERSION, AttackParams, CellConfig
from robustbench_interp.errors import ConfigError, UnknownNameError
from robustbench_interp.tracks import get_track


def make(**overrides) -> CellConfig:
    kwargs = dict(
        track="tiny", model="vgg", attack="location", interpreter="gradcam",
        params=AttackParams(lr=1e-4, lam=1.0, epochs=2, batch_size=8), seed=0,
    )
    kwargs.update(overrides)
    return CellConfig(**kwargs)


def test_names_resolve_through_the_registries_and_a_typo_lists_the_close_names():
    assert get_attack("topk").name == "topk" and get_attack(get_attack("topk")) is get_attack("topk")
    assert get_track(get_track("imagenet")).name == "imagenet"
    with pytest.raises(UnknownNameError, match="'center_mass'") as info:
        get_attack("centre_mass")
    assert "centre_mass" in str(info.value)
    assert isinstance(info.value, ConfigError)
    with pytest.raises(UnknownNameError, match="'center_mass'"):
        make(attack="centre_mass")


@pytest.mark.parametrize(
    "field,value,match",
    [("lr", 0.0, "lr"), ("lr", -1e-6, "lr"), ("lam", -1.0, "lam"),
     ("epochs", 0, "epochs"), ("batch_size", 0, "batch_size"), ("steps", 0, "steps"),
     ("lr", float("nan"), "lr"), ("epochs", 1.5, "epochs"), ("replays", 0, "replays"), ("adv", 1, "adv"),
     ("cooldown", 1.0, "cooldown"), ("cooldown", -0.1, "cooldown")],
)
def test_attack_params_reject_bad_values_naming_them(field, value, match):
    kwargs = {"lr": 1e-6, "lam": 1.0, field: value}
    with pytest.raises(ConfigError, match=match) as info:
        AttackParams(**kwargs)
    assert repr(value) in str(info.value) or str(value) in str(info.value)


@pytest.mark.parametrize("attack,params,match", [("topk", {"k": 0.0}, "k"), ("topk", {"k": 1.5}, "k"),
                                                 ("active", {"reduction": "max"}, "reduction"),
                                                 ("topk", {"kk": 0.1}, "Did you mean 'k'")])
def test_an_attacks_own_parameters_are_validated_naming_the_bad_value(attack, params, match):
    classes = (0, 1) if attack == "active" else None
    with pytest.raises(ConfigError, match=match):
        make(attack=attack, attack_params=params, classes=classes)


def test_an_attacks_parameters_are_completed_with_its_defaults():
    assert make(attack="topk").attack_params == (("k", 0.1),)
    assert make(attack="topk").cell_id == make(attack="topk", attack_params={"k": 0.1}).cell_id
    assert make().attack_params == ()


def test_adversarial_training_needs_a_radius():
    with pytest.raises(ConfigError, match="eps"):
        AttackParams(lr=1e-6, lam=1.0, adv=True)
    p = AttackParams(lr=1e-6, lam=1.0, adv=True, eps=2 / 255, replays=4)
    assert p.adv and p.replays == 4


def test_strings_become_enums_and_numbers_are_canonical():
    c = make()
    assert c.track == "tiny" and c.attack == "location"
    as_ints, as_floats = AttackParams(lr=1, lam=1), AttackParams(lr=1.0, lam=1.0)
    assert make(params=as_ints).cell_id == make(params=as_floats).cell_id
    assert c.version == BENCHMARK_VERSION
    with pytest.raises(UnknownNameError):
        make(track="tinny")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.seed = 3  # type: ignore[misc]


def test_interpreter_params_are_a_sorted_hashable_tuple_whatever_the_input_order():
    a = make(interpreter="smoothgrad", interpreter_params={"sigma": 0.15, "n_samples": 8})
    b = make(interpreter="smoothgrad", interpreter_params=[("n_samples", 8), ("sigma", 0.15)])
    assert a.interpreter_params == (("n_samples", 8), ("sigma", 0.15))
    assert a == b and hash(a) == hash(b) and a.cell_id == b.cell_id
    with pytest.raises(ConfigError, match="object"):
        make(interpreter_params={"bad": object()})


def test_active_cells_need_two_classes_and_passive_cells_none():
    active = make(attack="active", classes=(386, 555))
    assert active.classes == (386, 555) and active.label == "tiny-vgg-active-gradcam-386v555"
    with pytest.raises(ConfigError, match="classes"):
        make(attack="active")
    with pytest.raises(ConfigError, match="different"):
        make(attack="active", classes=(3, 3))
    with pytest.raises(ConfigError, match="only for the active"):
        make(classes=(1, 2))


def test_label_is_human_readable():
    assert make().label == "tiny-vgg-location-gradcam"


def test_equal_configs_have_equal_ids_and_any_change_gives_a_different_id():
    base = make()
    assert make().cell_id == base.cell_id and len(base.cell_id) == 16
    int(base.cell_id, 16)
    variants = [
        make(track="imagenet"), make(model="vgg-adv"), make(attack="topk"), make(interpreter="lrp_t"),
        make(interpreter_params={"eps": 0.01}), make(seed=1), make(version=BENCHMARK_VERSION + ".1"),
        make(params=AttackParams(lr=2e-4, lam=1.0, epochs=2)),
        make(params=AttackParams(lr=1e-4, lam=0.5, epochs=2)),
        make(params=AttackParams(lr=1e-4, lam=1.0, epochs=3)),
        make(attack="topk", attack_params={"k": 0.2}),
        make(params=AttackParams(lr=1e-4, lam=1.0, epochs=2, adv=True, eps=0.01)),
        make(params=AttackParams(lr=1e-4, lam=1.0, epochs=2, batch_size=8, cooldown=0.4)),
        make(attack="active", classes=(0, 1)), make(attack="active", classes=(1, 0)),
    ]
    ids = {v.cell_id for v in variants}
    assert base.cell_id not in ids and len(ids) == len(variants)


def test_json_round_trip_preserves_the_config_and_its_id():
    for c in (make(interpreter_params={"ks": [1, 2], "mode": "x"}), make(attack="active", classes=(2, 5))):
        back = CellConfig.from_dict(json.loads(json.dumps(c.to_dict())))
        assert back == c and back.cell_id == c.cell_id
    with pytest.raises(ConfigError, match="unknown"):
        CellConfig.from_dict({**make().to_dict(), "colour": "red"})


def test_cell_id_is_stable_across_processes():
    """Python's hash() is salted per process; the cell id must not be."""
    code = (
        "from robustbench_interp.config import CellConfig, AttackParams;"
        "print(CellConfig(track='tiny', model='vgg', attack='location', interpreter='gradcam',"
        "params=AttackParams(lr=1e-4, lam=1.0, epochs=2, batch_size=8), seed=0).cell_id)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": ""})
    assert out.stdout.strip() == make().cell_id
