"""The registry fails helpfully: duplicates, unknown names, bad import paths, broken plug-ins."""

from __future__ import annotations

import sys
import textwrap
from importlib import metadata

import pytest

import robustbench_interp as rbi
from robustbench_interp.errors import DuplicateNameError, PluginImportError, UnknownNameError
from robustbench_interp.interpreters import INTERPRETERS
from robustbench_interp.registry import Registry, import_object

BUILTINS = [
    "gradcam",
    "gradient_x_input",
    "integrated_gradients",
    "lrp",
    "lrp_t",
    "simplegrad",
    "simplegrad_t",
    "smoothgrad",
]


def test_public_api_all_is_sorted_and_importable():
    assert rbi.__all__ == sorted(rbi.__all__)
    for name in rbi.__all__:
        assert hasattr(rbi, name), name


def test_public_api_has_the_tracks_models_and_data():
    assert {"load_model", "list_models", "list_tracks", "get_dataset", "get_composites"} <= set(rbi.__all__)
    assert {"vgg", "resnet", "densenet"} <= set(rbi.list_models("tiny"))


def test_every_builtin_is_registered():
    assert set(BUILTINS) <= set(rbi.list_interpreters())
    for name in BUILTINS:
        interp = rbi.get_interpreter(name)
        assert isinstance(interp, rbi.Interpreter)
        assert interp.name == name
        assert interp.differentiable
        assert interp.layer_level == (name.endswith("_t") or name == "gradcam")


def test_list_interpreters_filters_with_fnmatch():
    assert rbi.list_interpreters("lrp*") == ["lrp", "lrp_t"]


def test_unknown_name_lists_the_closest_names():
    with pytest.raises(UnknownNameError) as err:
        rbi.get_interpreter("gradcamm")
    assert "'gradcamm'" in str(err.value)
    assert "Did you mean 'gradcam'" in str(err.value)


def test_duplicate_registration_is_an_error():
    with pytest.raises(DuplicateNameError, match="'gradcam' is already registered"):

        @rbi.register_interpreter("gradcam")
        class Again(rbi.Interpreter):
            def explain(self, model, x, target, *, layer=None, create_graph=False):
                raise NotImplementedError


def test_register_interpreter_decorator_sets_name_and_builds(monkeypatch):
    monkeypatch.setattr(INTERPRETERS, "_entries", dict(INTERPRETERS._entries))
    monkeypatch.setattr(INTERPRETERS, "_origins", dict(INTERPRETERS._origins))

    @rbi.register_interpreter("user_method")
    class UserMethod(rbi.Interpreter):
        def explain(self, model, x, target, *, layer=None, create_graph=False):
            return x.sum(1)

    interp = rbi.get_interpreter("user_method", alpha=2)
    assert isinstance(interp, UserMethod)
    assert interp.name == "user_method"
    assert interp.params == {"alpha": 2}


def _write_module(tmp_path, monkeypatch, name, body):
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)


def test_module_attr_spec_builds_the_class(tmp_path, monkeypatch):
    _write_module(
        tmp_path,
        monkeypatch,
        "rbi_user_mod",
        """
        from robustbench_interp import Interpreter
        class Edge(Interpreter):
            differentiable = False
            def explain(self, model, x, target, *, layer=None, create_graph=False):
                return x.mean(1)
        """,
    )
    interp = rbi.get_interpreter("rbi_user_mod:Edge")
    assert interp.name == "rbi_user_mod:Edge"
    assert interp.differentiable is False


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module_xyz:Thing", "could not import module 'no_such_module_xyz'"),
        ("rbi_user_mod2:Missing", "has no attribute 'Missing'"),
        ("rbi_user_mod2:", "is not of the form"),
        ("rbi_user_mod2:NotAnInterpreter", "must subclass robustbench_interp.Interpreter"),
    ],
)
def test_module_attr_spec_says_which_part_failed(tmp_path, monkeypatch, spec, message):
    _write_module(tmp_path, monkeypatch, "rbi_user_mod2", "class NotAnInterpreter:\n    pass\n")
    with pytest.raises(PluginImportError, match=message):
        rbi.get_interpreter(spec)


def test_import_object_follows_dotted_attributes():
    assert import_object("os.path:join.__name__") == "join"


class _FakeEntryPoint:
    def __init__(self, name, value, loader):
        self.name, self.value, self._loader = name, value, loader

    def load(self):
        return self._loader()


def _broken():
    raise RuntimeError("boom")


def test_entry_points_load_lazily_and_a_broken_one_fails_only_itself(monkeypatch):
    eps = [_FakeEntryPoint("good", "pkg:Good", lambda: dict), _FakeEntryPoint("bad", "pkg:Bad", _broken)]
    monkeypatch.setattr(metadata, "entry_points", lambda group: eps if group == "test.group" else [])
    reg: Registry = Registry("thing", "test.group")
    assert reg.names() == ["bad", "good"]
    assert reg.get("good") is dict
    assert reg.origin("good") == "entry point pkg:Good"
    with pytest.raises(PluginImportError, match="RuntimeError: boom"):
        reg.get("bad")


def test_entry_point_clashing_with_a_builtin_is_an_error(monkeypatch):
    eps = [_FakeEntryPoint("dup", "pkg:Dup", lambda: dict)]
    monkeypatch.setattr(metadata, "entry_points", lambda group: eps)
    reg: Registry = Registry("thing", "test.group")
    reg.add("dup", list)
    with pytest.raises(DuplicateNameError, match="clashes"):
        reg.names()
