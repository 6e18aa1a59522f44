"""lm-eval's task index read from the cache equals a fresh build, and any change to a YAML file rebuilds it."""

from __future__ import annotations

import pytest
from lm_eval.tasks import _index

from lm_eval_bias import task_index_cache

FRESH = getattr(_index.TaskIndex.build, "__wrapped__", _index.TaskIndex.build)  # lm-eval's own build


def as_tuples(index: dict) -> dict:
    return {name: (e.kind, e.yaml_path, e.cfg, e.tags) for name, e in index.items()}


@pytest.fixture
def tasks_root(tmp_path, monkeypatch):
    root = tmp_path / "tasks"
    (root / "family").mkdir(parents=True)
    (root / "family" / "_common.yaml").write_text("output_type: loglikelihood\ntest_split: test\n")
    (root / "family" / "one.yaml").write_text("include: _common.yaml\ntask: one\ntag: [family_tag]\n")
    (root / "family" / "two.yaml").write_text("include: _common.yaml\ntask: two\ntag: family_tag\n")
    (root / "group.yaml").write_text("group: both\ntask: [one, two]\n")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "ignored.yaml").write_text("task: ignored\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(task_index_cache.DISABLE_ENV, raising=False)
    monkeypatch.setattr(task_index_cache, "cached_roots", lambda: {root.resolve()})
    return root.resolve()


def test_the_cached_index_equals_a_fresh_build_and_is_read_without_parsing(tasks_root, monkeypatch):
    build = task_index_cache.cached_build(FRESH)
    fresh = as_tuples(FRESH([tasks_root]))
    assert set(fresh) == {"one", "two", "both", "family_tag"}
    assert as_tuples(build([tasks_root])) == fresh  # built, then kept
    assert len(list(task_index_cache.cache_dir().glob("*.pickle"))) == 1

    def no_parsing(*args, **kwargs):
        raise AssertionError("a YAML file was parsed")

    monkeypatch.setattr(_index, "load_yaml", no_parsing)
    assert as_tuples(build([tasks_root])) == fresh


def test_an_edited_added_or_removed_yaml_rebuilds_the_index(tasks_root):
    build = task_index_cache.cached_build(FRESH)
    build([tasks_root])
    (tasks_root / "family" / "two.yaml").write_text("include: _common.yaml\ntask: two_renamed\n")
    assert "two_renamed" in build([tasks_root]) and "two" not in build([tasks_root])
    (tasks_root / "three.yaml").write_text("task: three\n")
    assert "three" in build([tasks_root])
    (tasks_root / "three.yaml").unlink()
    assert as_tuples(build([tasks_root])) == as_tuples(FRESH([tasks_root]))
    assert len(list(task_index_cache.cache_dir().glob("*.pickle"))) == 1  # earlier states removed


def test_a_damaged_cache_file_is_rebuilt(tasks_root):
    build = task_index_cache.cached_build(FRESH)
    build([tasks_root])
    (kept,) = task_index_cache.cache_dir().glob("*.pickle")
    kept.write_bytes(kept.read_bytes()[:100])
    assert as_tuples(build([tasks_root])) == as_tuples(FRESH([tasks_root]))


def test_off_and_other_folders_are_built_as_lm_eval_builds_them(tasks_root, tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    (other / "one.yaml").write_text("task: one\noutput_type: generate_until\n")  # overrides tasks_root's one
    build = task_index_cache.cached_build(FRESH)
    assert as_tuples(build([tasks_root, other])) == as_tuples(FRESH([tasks_root, other]))
    assert build([tasks_root, other])["one"].cfg["output_type"] == "generate_until"
    monkeypatch.setattr(task_index_cache, "cached_roots", lambda: set())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache2"))
    build([tasks_root])
    monkeypatch.setattr(task_index_cache, "cached_roots", lambda: {tasks_root})
    monkeypatch.setenv(task_index_cache.DISABLE_ENV, "0")
    assert as_tuples(build([tasks_root])) == as_tuples(FRESH([tasks_root]))
    assert not (tmp_path / "cache2").exists()


def test_lm_evals_own_folder_through_the_plugin(tmp_path, monkeypatch):
    """The TaskManager lm_eval builds (plugin loaded) reads the cache and indexes what a fresh build does."""
    from lm_eval.tasks import TaskManager

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(task_index_cache.DISABLE_ENV, raising=False)
    assert getattr(_index.TaskIndex.build, "__wrapped__", None) is FRESH  # the plugin's hook is installed
    (root,) = task_index_cache.cached_roots()
    fresh = as_tuples(FRESH([root]))
    TaskManager()  # builds and keeps
    assert len(list(task_index_cache.cache_dir().glob("*.pickle"))) == 1
    manager = TaskManager()  # reads
    ours = {name: (e.kind, e.yaml_path, e.cfg, e.tags) for name, e in manager.task_index.items()}
    assert {name: value for name, value in ours.items() if name in fresh} == fresh
    assert "crows_pairs_bias" in manager.all_groups and "bbq" in manager.all_tasks
