"""Studies: a grid of models × revisions × compressions × tasks, declared once in YAML and run resumably.

`config` expands the YAML into cells, `cell` runs one cell into a directory named by the
hash of its settings, `executors` decide where cells run, `runner` ties them together.
"""

from lm_eval_bias.study.cell import Cell, Outcome, run_cell
from lm_eval_bias.study.config import Study, StudyConfigError, expand_revisions, expand_study, load_study
from lm_eval_bias.study.executors import EXECUTORS, LocalExecutor, RayExecutor
from lm_eval_bias.study.runner import Summary, check_tasks, plan, plan_report, run_study

__all__ = [
    "Cell",
    "Outcome",
    "run_cell",
    "Study",
    "StudyConfigError",
    "expand_revisions",
    "expand_study",
    "load_study",
    "EXECUTORS",
    "LocalExecutor",
    "RayExecutor",
    "Summary",
    "check_tasks",
    "plan",
    "plan_report",
    "run_study",
]
