"""User tasks: plugin specs, the Task API check, entry points, and built-ins on the same registry."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import objectives
from objectives import ObjectivesError, get_task, load_task_plugin, register_task, task_names, unregister_task
from objectives._registry import _FACTORIES

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugins" / "higgs_tagger.py"


@pytest.fixture
def clean_registry() -> Iterator[None]:
    before = set(_FACTORIES)
    yield
    for name in set(_FACTORIES) - before:
        unregister_task(name)


def test_the_built_in_tasks_are_plain_registry_entries_like_a_plugin(clean_registry: None) -> None:
    from objectives._econt_task import EcontTask
    from objectives._trigger_task import TriggerTask
    from objectives._waveform_task import WaveformTask

    assert task_names()[:3] == ("econt", "waveform", "trigger")
    assert _FACTORIES["econt"] is EcontTask and _FACTORIES["waveform"] is WaveformTask
    assert _FACTORIES["trigger"] is TriggerTask
    name = load_task_plugin(f"{EXAMPLE}:HiggsTagger")
    assert name == "higgs_tagger" and _FACTORIES[name].__name__ == "HiggsTagger"
    # A built-in leaves and comes back through the public functions, exactly like a plugin.
    order = dict(_FACTORIES)
    unregister_task("trigger")
    try:
        with pytest.raises(ObjectivesError, match="unknown task 'trigger'"):
            get_task("trigger")
    finally:
        register_task("trigger", TriggerTask)
        _FACTORIES.clear()  # keep the registration order other tests see
        _FACTORIES.update(order)
    assert get_task("trigger").primary_metric == "pt_resolution"
    assert load_task_plugin(f"{EXAMPLE}:HiggsTagger") == name  # loading again is a no-op


@pytest.mark.parametrize(
    ("source", "spec", "message"),
    [
        (None, "missing.py:Task", "plugin file"),
        ("x = 1\n", "{path}:MuonTrigger", "has no class 'MuonTrigger'; Task subclasses in it: none"),
        (
            "class MuonTrigger:\n    name = 'm'\n",
            "{path}:MuonTrigger",
            "does not derive from objectives.Task; it lacks read_data",
        ),
        (
            "from objectives import Task\nclass MuonTrigger(Task):\n    name = 'mu'\n"
            "    def read_data(self, path, *, max_rows=None): ...\n",
            "{path}:MuonTrigger",
            "does not implement the Task method(s) evaluate, prepare, synthesize",
        ),
        ("raise RuntimeError('boom')\n", "{path}:X", "failed to import: RuntimeError: boom"),
        (None, "no_such_module_hwnas:Task", "plugin module 'no_such_module_hwnas' cannot be found"),
    ],
)
def test_bad_plugins_get_one_clear_message(
    tmp_path: Path, clean_registry: None, source: str | None, spec: str, message: str
) -> None:
    path = tmp_path / "my_tasks.py"
    if source is not None:
        path.write_text(source)
    spec = spec.format(path=path)
    if spec.startswith("missing"):
        spec = f"{tmp_path / spec}"
    with pytest.raises(ObjectivesError, match=None) as info:
        load_task_plugin(spec)
    assert message in str(info.value)


def test_a_plugin_declaring_a_bad_attribute_names_it(tmp_path: Path, clean_registry: None) -> None:
    path = tmp_path / "bad_family.py"
    path.write_text(
        f"import importlib.util\nspec = importlib.util.spec_from_file_location('base', {str(EXAMPLE)!r})\n"
        "base = importlib.util.module_from_spec(spec); spec.loader.exec_module(base)\n"
        "class Other(base.HiggsTagger):\n    name = 'other'\n    model_family = 'transformer'\n"
    )
    with pytest.raises(ObjectivesError, match="model_family 'transformer' is not one of"):
        load_task_plugin(f"{path}:Other")


def test_an_entry_point_task_is_registered_under_its_name(tmp_path: Path) -> None:
    package = tmp_path / "site"
    (package / "hwnas_demo_tasks-0.1.dist-info").mkdir(parents=True)
    (package / "hwnas_demo_tasks-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: hwnas-demo-tasks\nVersion: 0.1\n"
    )
    (package / "hwnas_demo_tasks-0.1.dist-info" / "entry_points.txt").write_text(
        "[hwnas.tasks]\nhiggs_tagger = higgs_tagger:HiggsTagger\nbroken = no_such_module_x:Task\n"
    )
    code = (
        "from objectives import get_task, task_names, ObjectivesError\n"
        "print(task_names())\nprint(get_task('higgs_tagger').primary_metric)\n"
        "try:\n    get_task('broken')\nexcept ObjectivesError as e:\n    print('ERR', e)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(package), str(EXAMPLE.parent)])}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "'higgs_tagger'" in lines[0] and "'broken'" not in lines[0]
    assert lines[1] == "auc"
    assert lines[2].startswith("ERR entry point 'broken'") and "no_such_module_x" in lines[2]


def test_public_api_exports_plugin_loading() -> None:
    assert objectives.ENTRY_POINT_GROUP == "hwnas.tasks"
    assert "load_task_plugin" in objectives.__all__
