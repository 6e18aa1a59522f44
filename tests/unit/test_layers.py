"""Imports point one way (docs/architecture.md, "Layers"): no import cycle among the package's
modules or packages, and no core module (data, scoring, metrics) importing lm_eval.

tools/import_cycles.py reads every import statement (also inside functions) with ast, so this
runs without importing anything heavy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_no_import_cycles_and_a_core_without_lm_eval():
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "import_cycles.py"), str(REPO)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().endswith("0 import cycles, 0 core modules importing lm_eval"), proc.stdout
