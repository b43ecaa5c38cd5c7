"""The public surface: small, sorted, documented, and cheap to import."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import trainwire


def test_all_is_sorted_and_names_exactly_the_public_objects():
    public = {n for n in vars(trainwire) if not n.startswith("_")} - {"annotations"}
    exported = set(trainwire.__all__) - {"__version__"}
    assert list(trainwire.__all__) == sorted(trainwire.__all__)
    modules = {n for n in public if inspect.ismodule(getattr(trainwire, n))}
    assert exported == public - modules


def test_every_public_object_has_a_docstring():
    for name in trainwire.__all__:
        obj = getattr(trainwire, name)
        if name == "__version__":
            continue
        assert inspect.getdoc(obj), f"trainwire.{name} has no docstring"
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or (
                    not callable(member) and not isinstance(member, property)
                ):
                    continue
                assert inspect.getdoc(member), f"trainwire.{name}.{attr} has no docstring"


def test_errors_share_one_root_and_inherit_the_matching_builtin():
    assert issubclass(trainwire.ConfigError, trainwire.TrainwireError)
    assert issubclass(trainwire.ConfigError, ValueError)
    assert issubclass(trainwire.TrainingError, trainwire.TrainwireError)
    assert issubclass(trainwire.TrainingError, RuntimeError)


def test_init_has_the_documented_signature():
    params = inspect.signature(trainwire.init).parameters
    shape = [(p.name, p.kind.name, p.default) for p in params.values()]
    assert shape == [
        ("config", "POSITIONAL_OR_KEYWORD", None),
        ("total_steps", "KEYWORD_ONLY", None),
        ("kind", "KEYWORD_ONLY", None),
        ("max_rate", "KEYWORD_ONLY", 10),
        ("flush_timeout", "KEYWORD_ONLY", 30),
        ("language", "KEYWORD_ONLY", "ko"),
    ]


def test_import_pulls_in_no_framework_and_not_pika():
    code = (
        "import sys, json, trainwire\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch','tensorflow','keras','lightning','transformers','xgboost','lightgbm','pika',"
        "'numpy','yaml'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_package_is_typed():
    from importlib.resources import files

    assert (files("trainwire") / "py.typed").is_file()
