"""Package layout and the lm_eval_bias.pth start-up hook (metadata: pyproject.toml).

tasks/ and model_wrappers/ live at the top of the repository but install as
lm_eval_bias.tasks and lm_eval_bias.model_wrappers, task YAMLs included.

lm-eval 0.4.13 reads no plugin entry points, so site-packages gets
lm_eval_bias.pth, whose one line installs lm_eval_bias._plugin_hook. setuptools
installs no .pth of its own accord, so:
  * wheel (pip install .): build_py writes the .pth at the root of build_lib,
    which becomes the root of the wheel, i.e. site-packages;
  * editable (pip install -e ., PEP 660): editable_wheel adds the .pth to the
    editable wheel next to setuptools' own __editable__ .pth ("lm_eval_bias.pth"
    sorts after "__editable__...", so lm_eval_bias is importable by then).
"""

import os

from setuptools import find_namespace_packages, find_packages, setup
from setuptools.command.build_py import build_py

PTH_NAME = "lm_eval_bias.pth"
# An import line, as site.py runs only those; silent when the package has gone (e.g. an editable
# install whose source folder was deleted), so no Python start-up prints a traceback because of us.
PTH_LINE = (
    'import sys; exec("try:\\n import lm_eval_bias._plugin_hook as hook\\nexcept ImportError:\\n pass\\n'
    'else:\\n hook.install()")\n'
)

EXCLUDE = ["__pycache__", "*.__pycache__"]
PACKAGE_DIR = {
    "lm_eval_bias": "lm_eval_bias",
    "lm_eval_bias.tasks": "tasks",
    "lm_eval_bias.model_wrappers": "model_wrappers",
}


def _packages():
    packages = ["lm_eval_bias"] + [f"lm_eval_bias.{p}" for p in find_packages("lm_eval_bias", exclude=EXCLUDE)]
    packages.append("lm_eval_bias.model_wrappers")
    packages += [f"lm_eval_bias.model_wrappers.{p}" for p in find_packages("model_wrappers", exclude=EXCLUDE)]
    # Task folders need no __init__.py (lm-eval reads them as files): namespace discovery.
    packages.append("lm_eval_bias.tasks")
    packages += [f"lm_eval_bias.tasks.{p}" for p in find_namespace_packages("tasks", exclude=EXCLUDE)]
    return packages


class build_py_with_pth(build_py):
    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):
            target = os.path.join(self.build_lib, PTH_NAME)
            with open(target, "w", encoding="utf-8") as f:
                f.write(PTH_LINE)


cmdclass = {"build_py": build_py_with_pth}

try:
    from setuptools.command.editable_wheel import editable_wheel
except ImportError:  # setuptools < 64: no PEP 660
    editable_wheel = None


class _StrategyWithPth:
    """Wraps setuptools' editable strategy (pth / finder / link tree) to add our .pth."""

    def __init__(self, strategy):
        self._strategy = strategy

    def __call__(self, wheel, files, mapping):
        result = self._strategy(wheel, files, mapping)
        wheel.writestr(PTH_NAME, PTH_LINE.encode("utf-8"))
        return result

    def __enter__(self):
        self._strategy.__enter__()
        return self

    def __exit__(self, *exc):
        return self._strategy.__exit__(*exc)


if editable_wheel is not None:

    class editable_wheel_with_pth(editable_wheel):
        def _select_strategy(self, *args, **kwargs):
            return _StrategyWithPth(super()._select_strategy(*args, **kwargs))

    cmdclass["editable_wheel"] = editable_wheel_with_pth


setup(
    packages=_packages(),
    package_dir=PACKAGE_DIR,
    package_data={"": ["*.yaml", "*.yml", "*_yaml", "*.json", "*.jinja"]},
    cmdclass=cmdclass,
)
