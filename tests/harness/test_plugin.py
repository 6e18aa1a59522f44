"""The harness plugin: lm_eval_bias.pth, its import hook, and what it does to lm-eval.

Most checks run a fresh interpreter, since the hook acts at start-up; they need the
package installed (``pip install -e .`` or ``pip install .``).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
OUR_TASKS = REPO / "tasks" / "crows_pairs_bias"

USER_TASK = """\
task: {name}
dataset_path: json
dataset_kwargs:
  data_files: {data}
test_split: train
output_type: loglikelihood
doc_to_text: "{{{{q}}}}"
doc_to_target: "{{{{a}}}}"
metric_list:
  - metric: acc
"""


def run_python(code: str, cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", PYTHONWARNINGS="default")
    return subprocess.run(
        [sys.executable, *args, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def last_json(proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_user_task(folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.jsonl").write_text('{"q": "1 + 1 =", "a": " 2"}\n')
    (folder / f"{name}.yaml").write_text(USER_TASK.format(name=name, data=folder / "data.jsonl"))


# ------------------------------------------------------------------ start-up


def test_plain_python_loads_only_the_hook(tmp_path):
    proc = run_python(
        """
        import json, sys
        print(json.dumps(sorted(m for m in sys.modules if m.startswith(("lm_eval", "torch", "transformers")))))
        """,
        tmp_path,
    )
    loaded = last_json(proc)
    assert "lm_eval_bias._plugin_hook" in loaded, (
        "lm_eval_bias.pth did not run at start-up: install the package (pip install -e .)"
    )
    assert loaded == ["lm_eval_bias", "lm_eval_bias._plugin_hook"]


def test_the_pth_line_stays_silent_when_the_package_is_gone(tmp_path):
    """An editable install whose source folder was deleted must not print a traceback at every start-up."""
    import site

    pth = next(Path(d) / "lm_eval_bias.pth" for d in site.getsitepackages() if (Path(d) / "lm_eval_bias.pth").is_file())
    line = pth.read_text().strip()
    assert line.startswith("import ")  # site.py executes only lines that start with "import"
    script = f"{line}\nprint('ok')"  # -S: no site-packages, so lm_eval_bias cannot be imported
    proc = subprocess.run([sys.executable, "-S", "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert (proc.returncode, proc.stdout.strip(), proc.stderr) == (0, "ok", "")
    assert "hook.install()" in line


def test_hook_is_idempotent_and_applies_to_modules_imported_before_it(tmp_path):
    proc = run_python(
        """
        import json, sys
        import lm_eval_bias._plugin_hook as hook
        sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, hook._MARK, False)]
        import lm_eval.api.registry as r                      # imported without the hook
        before = "quantized_hf" in r.model_registry
        hook.install(); hook.install()
        print(json.dumps({
            "before": before,
            "after": "quantized_hf" in r.model_registry,
            "hf": "hf" in r.model_registry,
            "finders": sum(bool(getattr(f, hook._MARK, False)) for f in sys.meta_path),
        }))
        """,
        tmp_path,
    )
    assert last_json(proc) == {"before": False, "after": True, "hf": True, "finders": 1}


def test_failing_callback_warns_and_import_still_works(tmp_path):
    proc = run_python(
        """
        import json, warnings
        import lm_eval_bias.plugin as plugin
        def broken(module):
            raise ZeroDivisionError("boom")
        plugin.on_group = broken
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import lm_eval.api.group as g
        print(json.dumps({
            "group": hasattr(g, "Group"),
            "loader": type(g.__loader__).__name__,
            "warnings": [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)],
        }))
        """,
        tmp_path,
    )
    out = last_json(proc)
    assert out["group"]
    assert out["loader"] == "SourceFileLoader"  # the wrapper does not stay on the module
    assert any("lm_eval.api.group" in w and "boom" in w for w in out["warnings"]), out


# -------------------------------------------------------------------- models


def test_models_registered_next_to_stock_ones(tmp_path):
    from lm_eval_bias.plugin import MODELS

    has_wrapper = importlib.util.find_spec("lm_eval_bias.model_wrappers.quantized_hf") is not None
    proc = run_python(
        f"""
        import json, sys
        import lm_eval.api.registry as r
        out = {{
            "ours": {{name: r.model_registry._objs.get(name) for name in {sorted(MODELS)!r}}},
            "hf_registered": "hf" in r.model_registry,
            "heavy_imported": [m for m in ("torch", "transformers") if m in sys.modules],
            "hf": r.get_model("hf").__name__,
        }}
        if {has_wrapper!r}:
            out["quantized_hf"] = r.get_model("quantized_hf").__name__
        print(json.dumps(out))
        """,
        tmp_path,
    )
    out = last_json(proc)
    assert out["ours"] == MODELS  # registered lazily, as "module:Class" strings
    assert out["hf_registered"]
    assert out["heavy_imported"] == []  # before get_model, nothing heavy was imported
    assert out["hf"] == "HFLM"
    if has_wrapper:
        assert out["quantized_hf"] == "QuantizedHFLM"


# --------------------------------------------------------------------- tasks


def test_task_manager_sees_our_tasks_and_user_include_path(tmp_path):
    user = tmp_path / "user_tasks"
    write_user_task(user, "my_user_task")
    # A user's task with the name of one of ours overrides ours.
    write_user_task(user / "override", "crows_pairs_bias_age")
    proc = run_python(
        f"""
        import json
        from lm_eval.tasks import TaskManager
        default = TaskManager()
        custom = TaskManager(include_path={str(user)!r})
        as_list = TaskManager(include_path=[{str(user)!r}], include_defaults=False)
        from lm_eval_bias.catalog import with_our_tasks
        asked = TaskManager(include_path=with_our_tasks([{str(user)!r}]), include_defaults=False)
        print(json.dumps({{
            "default_groups": [g for g in default.all_groups if g.startswith("crows_pairs_bias")],
            "default_subtasks": [t for t in default.all_subtasks if t.startswith("crows_pairs_bias")],
            "stock": "hellaswag" in default.all_tasks,
            "include_path_kept": [default.include_path, custom.include_path],
            "custom": ["my_user_task" in custom.all_tasks, "crows_pairs_bias" in custom.all_groups],
            "as_list": ["my_user_task" in as_list.all_tasks, "crows_pairs_bias" in as_list.all_groups],
            "asked": ["my_user_task" in asked.all_tasks, "crows_pairs_bias" in asked.all_groups,
                      "hellaswag" in asked.all_tasks],
            "age_from": str(custom.task_index["crows_pairs_bias_age"].yaml_path),
        }}))
        """,
        tmp_path,
    )
    out = last_json(proc)
    assert out["default_groups"] == ["crows_pairs_bias"]
    assert len(out["default_subtasks"]) == len(list(OUR_TASKS.glob("crows_pairs_bias_*.yaml")))
    assert out["stock"]
    assert out["include_path_kept"] == [None, str(user)]
    assert out["custom"] == [True, True]
    # our tasks count as lm-eval defaults: include_defaults=False leaves them out (lm-eval's own
    # test_include_defaults_false_with_custom_path), unless the caller asks for their folder
    assert out["as_list"] == [True, False]
    assert out["asked"] == [True, True, False]
    assert Path(out["age_from"]) == user / "override" / "crows_pairs_bias_age.yaml"


def test_stock_cli_lists_our_tasks(tmp_path):
    user = tmp_path / "user_tasks"
    write_user_task(user, "my_user_task")
    script = Path(sys.executable).parent / "lm_eval"
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "lm_eval"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    proc = subprocess.run(
        [*cmd, "ls", "tasks", "--include_path", str(user)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    listed = {cell.strip() for line in proc.stdout.splitlines() for cell in line.split("|")[1:2]}
    assert {"crows_pairs_bias", "crows_pairs_bias_age", "my_user_task"} <= listed


# ------------------------------------------------------------ group pooling


def _hand_made_group(name, metadata, leaves):
    from lm_eval.api.group import Group
    from lm_eval.api.task import Task
    from lm_eval.config.group import AggMetricConfig

    class Leaf(Task):
        task_name = None  # plain attribute instead of Task's property

    Leaf.__abstractmethods__ = frozenset()
    metrics = ["stereotype_score", "stereo_score", "antistereo_score", "stereo_pairs", "antistereo_pairs"]
    group = Group(
        name=name,
        aggregate_metric_list=[AggMetricConfig(metric=m, weight_by_size=True) for m in metrics],
        metadata=metadata,
    )
    for leaf_name in leaves:
        leaf = object.__new__(Leaf)
        leaf.task_name = leaf_name
        group.add(leaf)
    return group


POOLED = {"pooled_ratio_metrics": {"stereo_score": "stereo_pairs", "antistereo_score": "antistereo_pairs"}}
NAN = float("nan")
TASK_METRICS = {
    "a": {
        "sample_len": 12,
        "stereotype_score,none": 55.0,
        "stereotype_score_stderr,none": 3.0,
        "stereo_score,none": 60.0,
        "stereo_score_stderr,none": 2.0,
        "stereo_pairs,none": 10.0,
        "antistereo_score,none": 50.0,
        "antistereo_score_stderr,none": "N/A",
        "antistereo_pairs,none": 2.0,
        "stereo_score,alt": 100.0,
        "stereo_pairs,alt": 1.0,
    },
    "b": {
        "sample_len": 35,
        "stereotype_score,none": 45.0,
        "stereotype_score_stderr,none": 1.5,
        "stereo_score,none": 40.0,
        "stereo_score_stderr,none": 1.0,
        "stereo_pairs,none": 30.0,
        "antistereo_score,none": 25.0,
        "antistereo_score_stderr,none": "N/A",
        "antistereo_pairs,none": 4.0,
        "stereo_score,alt": 0.0,
        "stereo_pairs,alt": 3.0,
    },
    "c": {  # no stereo pairs at all: its stereo_score is NaN and must not poison the group
        "sample_len": 3,
        "stereotype_score,none": 200 / 3,
        "stereotype_score_stderr,none": 5.0,
        "stereo_score,none": NAN,
        "stereo_score_stderr,none": NAN,
        "stereo_pairs,none": 0.0,
        "antistereo_score,none": 100 / 3,
        "antistereo_score_stderr,none": "N/A",
        "antistereo_pairs,none": 3.0,
    },
    "other_group_task": {"sample_len": 1000, "stereo_score,none": 0.0, "stereo_pairs,none": 1000.0},
}


@pytest.fixture(scope="module")
def hooked():
    from lm_eval_bias import _plugin_hook

    _plugin_hook.install()  # no-op when the .pth already did it
    import lm_eval.api.group

    assert getattr(lm_eval.api.group.Group.aggregate, "_lm_eval_bias_wrapped", False)
    return lm_eval.api.group.Group


def test_group_pools_ratio_metrics_over_their_counts(hooked):
    result = _hand_made_group("g", {"version": 1.0, **POOLED}, ["a", "b", "c"]).aggregate(TASK_METRICS)

    # (60*10 + 40*30) / (10 + 30); c has no stereo pairs and is left out
    assert result["stereo_score,none"] == pytest.approx(45.0)
    assert result["stereo_score_stderr,none"] == pytest.approx(math.sqrt(10**2 * 2.0**2 + 30**2 * 1.0**2) / 40)
    # (50*2 + 25*4 + 33.33*3) / 9; leaf stderrs are "N/A", so the harness's value stays
    assert result["antistereo_score,none"] == pytest.approx(100.0 / 3)
    assert result["antistereo_score_stderr,none"] == "N/A"
    # the other filter: (100*1 + 0*3) / 4
    assert result["stereo_score,alt"] == pytest.approx(25.0)
    # counts are summed, not averaged
    assert result["stereo_pairs,none"] == 40.0
    assert result["antistereo_pairs,none"] == 9.0
    assert result["stereo_pairs,alt"] == 4.0
    # metrics not named in pooled_ratio_metrics keep the harness's size-weighted mean
    assert result["stereotype_score,none"] == pytest.approx((55 * 12 + 45 * 35 + 200 / 3 * 3) / 50)
    assert result["sample_len"] == 50


def test_group_without_pooled_metadata_is_unchanged(hooked):
    group = _hand_made_group("g", {"version": 1.0}, ["a", "b"])
    original = hooked.aggregate.__wrapped__(group, TASK_METRICS)
    assert group.aggregate(TASK_METRICS) == original
    assert original["stereo_pairs,none"] == pytest.approx((10 * 12 + 30 * 35) / 47)  # the mean we replace


def test_group_with_no_counted_pairs_is_nan(hooked):
    result = _hand_made_group("g", POOLED, ["c"]).aggregate(TASK_METRICS)
    assert math.isnan(result["stereo_score,none"])
    assert result["stereo_pairs,none"] == 0.0
    assert result["antistereo_score,none"] == pytest.approx(100.0 / 3)


def test_pooling_reads_metadata_from_a_config_only_group():
    from lm_eval_bias.plugin import pool

    group = SimpleNamespace(
        metadata=None,
        _config=SimpleNamespace(metadata=POOLED),
        get_all_tasks=lambda: [SimpleNamespace(task_name="a"), SimpleNamespace(task_name="b")],
    )
    assert pool(group, TASK_METRICS, {})["stereo_score,none"] == pytest.approx(45.0)


def test_failing_pooling_fails_the_run(hooked, monkeypatch):
    """Never the harness's plain means under the pooled metric's name (docs/errors.md)."""
    import lm_eval_bias.plugin as plugin
    from lm_eval_bias.errors import GroupMetricError

    def broken(*args):
        raise ValueError("bad metrics")

    monkeypatch.setattr(plugin, "pool", broken)
    group = _hand_made_group("g", POOLED, ["a", "b"])
    with pytest.raises(GroupMetricError, match=r"^pooled group metrics failed for group 'g': ValueError: bad metrics;"):
        group.aggregate(TASK_METRICS)


def test_subset_percentages_get_a_proportion_stderr_over_the_pairs_they_count(hooked):
    """antistereo_score's leaves have NaN or "N/A" stderrs (bootstraps over a few pairs): the group's
    is that of a proportion of 0/100 items over the pooled antistereo pairs."""
    metadata = {**POOLED, "pooled_percentage_metrics": ["stereotype_score", "stereo_score", "antistereo_score"]}
    result = _hand_made_group("g", metadata, ["a", "b", "c"]).aggregate(TASK_METRICS)
    p, n = 100.0 / 3, 9  # (50*2 + 25*4 + 33.3*3) / 9 over 2 + 4 + 3 antistereo pairs
    assert result["antistereo_score_stderr,none"] == pytest.approx(math.sqrt(p * (100 - p) / (n - 1)))
    assert result["stereo_score_stderr,none"] == pytest.approx(math.sqrt(45.0 * 55.0 / (40 - 1)))
    assert result["stereotype_score_stderr,none"] == pytest.approx(
        math.sqrt(result["stereotype_score,none"] * (100 - result["stereotype_score,none"]) / (50 - 1))
    )
