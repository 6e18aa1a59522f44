"""Post-import hook that plugs lm-eval-bias into lm-evaluation-harness.

lm-eval 0.4.13 reads no plugin entry points, so the distribution installs
``lm_eval_bias.pth`` into site-packages, whose single line calls :func:`install`
at interpreter start-up. :func:`install` puts one finder at the front of
``sys.meta_path``. The finder ignores every module except the few named in
``HOOKS``; for those it asks the other finders for the real spec and wraps its
loader so that our callback (in :mod:`lm_eval_bias.plugin`, imported only then)
runs right after the module has executed.

Standard library only, and nothing imported here but ``sys`` and ``os``: a Python
process that never imports lm_eval pays one dict lookup per import and nothing else.
A failing callback is reported as a warning and never breaks the import.

``LM_EVAL_BIAS_DISABLE_HOOK=1`` in the environment leaves lm-eval untouched (no
finder, no patch): how ``benchmarks/lm_eval_suite_compare.sh`` runs lm-eval's own
tests without the plugin.
"""

import os
import sys

# module name -> "module:function" called with the freshly executed module
HOOKS = {
    "lm_eval.api.registry": "lm_eval_bias.plugin:on_registry",
    "lm_eval.api.group": "lm_eval_bias.plugin:on_group",
    "lm_eval.api.metrics": "lm_eval_bias.plugin:on_metrics",
    "lm_eval.tasks.manager": "lm_eval_bias.plugin:on_task_manager",
    "lm_eval.evaluator": "lm_eval_bias.plugin:on_evaluator",
}

_MARK = "_lm_eval_bias_hook"
DISABLE_ENV = "LM_EVAL_BIAS_DISABLE_HOOK"


def _warn(message):
    import warnings

    warnings.warn(f"lm-eval-bias plugin: {message}", RuntimeWarning, stacklevel=2)


def run_callback(name, module):
    """Run the callback registered for ``name``; report, never raise, on failure."""
    target = HOOKS.get(name)
    if target is None:
        return
    try:
        mod_name, _, func_name = target.partition(":")
        __import__(mod_name)
        getattr(sys.modules[mod_name], func_name)(module)
    except Exception as exc:  # noqa: BLE001 - a plugin must never break lm_eval
        _warn(f"{target} failed after importing {name}: {exc!r}")


class _Loader:
    """Wraps a loader: runs the original, then our callback; restores the original."""

    def __init__(self, loader, name):
        self._loader = loader
        self._name = name

    def create_module(self, spec):
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module):
        # Hand the original loader back first, so the module never keeps the wrapper.
        module.__loader__ = self._loader
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self._loader
        self._loader.exec_module(module)
        run_callback(self._name, sys.modules.get(self._name, module))

    def __getattr__(self, attr):
        return getattr(self._loader, attr)


class _Finder:
    """``sys.meta_path`` finder that only answers for the names in ``HOOKS``."""

    _lm_eval_bias_hook = True

    def __init__(self):
        self._busy = set()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in HOOKS or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            for finder in sys.meta_path:
                if finder is self or getattr(finder, _MARK, False):
                    continue
                find_spec = getattr(finder, "find_spec", None)
                if find_spec is None:
                    continue
                spec = find_spec(fullname, path, target)
                if spec is not None:
                    break
            else:
                return None
        finally:
            self._busy.discard(fullname)
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _Loader(spec.loader, fullname)
        return spec

    def invalidate_caches(self):
        pass


def install():
    """Install the hook once; apply callbacks for hooked modules already imported."""
    if os.environ.get(DISABLE_ENV, "").strip().lower() in ("1", "true", "yes"):
        return
    try:
        if any(getattr(f, _MARK, False) for f in sys.meta_path):
            return
        sys.meta_path.insert(0, _Finder())
        for name in HOOKS:
            module = sys.modules.get(name)
            if module is not None:
                run_callback(name, module)
    except Exception as exc:  # noqa: BLE001
        _warn(f"could not install the import hook: {exc!r}")
