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

:func:`install` also chains a ``sys.excepthook`` that prints an uncaught error of ours
(:class:`lm_eval_bias.errors.BiasError`) as one line, ``lm-eval-bias: <message>``, and exits
with status 1 as Python does; ``LM_EVAL_BIAS_TRACEBACK=1``, ``LMEVAL_LOG_LEVEL=DEBUG`` or
lm-eval's ``--verbosity DEBUG`` adds the traceback. Every other exception goes to the hook
that was there before, unchanged.
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
    "lm_eval._cli.utils": "lm_eval_bias.plugin:on_cli_utils",
}

_MARK = "_lm_eval_bias_hook"
TRACEBACK_ENV = "LM_EVAL_BIAS_TRACEBACK"  # the same name as lm_eval_bias.errors.TRACEBACK_ENV
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


def _ours(exc):
    """``exc`` is one of our user-facing errors (only possible once lm_eval_bias.errors is imported)."""
    errors = sys.modules.get("lm_eval_bias.errors")
    return errors is not None and isinstance(exc, errors.BiasError)


def want_traceback(argv=None):
    """The user asked for tracebacks: LM_EVAL_BIAS_TRACEBACK=1, LMEVAL_LOG_LEVEL=DEBUG or --verbosity DEBUG."""
    if os.environ.get(TRACEBACK_ENV, "").strip().lower() in ("1", "true", "yes"):
        return True
    if os.environ.get("LMEVAL_LOG_LEVEL", "").strip().upper() == "DEBUG":
        return True
    args = [str(a) for a in (sys.argv if argv is None else argv)]
    for i, arg in enumerate(args):
        if arg in ("--verbosity", "-v") and i + 1 < len(args) and args[i + 1].upper() == "DEBUG":
            return True
        if arg.upper() == "--VERBOSITY=DEBUG":
            return True
    return False


def one_line(exc):
    """The one line an error of ours is reported as."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    return f"lm-eval-bias: {message}"


class _ExceptHook:
    """``sys.excepthook``: one line for our errors, the previous hook for everything else."""

    _lm_eval_bias_hook = True

    def __init__(self, previous):
        self.previous = previous

    def __call__(self, exc_type, exc, tb):
        if not _ours(exc) or want_traceback():
            return self.previous(exc_type, exc, tb)
        try:
            sys.stderr.write(one_line(exc) + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - a broken stderr: fall back to Python's report
            self.previous(exc_type, exc, tb)


def install_excepthook():
    """Chain :class:`_ExceptHook` in front of the current ``sys.excepthook`` (once)."""
    if not getattr(sys.excepthook, _MARK, False):
        sys.excepthook = _ExceptHook(sys.excepthook)


def install():
    """Install the hook once; apply callbacks for hooked modules already imported."""
    if os.environ.get(DISABLE_ENV, "").strip().lower() in ("1", "true", "yes"):
        return
    try:
        if any(getattr(f, _MARK, False) for f in sys.meta_path):
            return
        sys.meta_path.insert(0, _Finder())
        install_excepthook()
        for name in HOOKS:
            module = sys.modules.get(name)
            if module is not None:
                run_callback(name, module)
    except Exception as exc:  # noqa: BLE001
        _warn(f"could not install the import hook: {exc!r}")
