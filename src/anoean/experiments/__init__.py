"""The paper's experiments: which runs exist, how one run is done, and how results are reported.

* :mod:`.methods`: each method's estimator, its validation grid and its epoch budget;
* :mod:`.runner`: enumerates (experiment, case, method, seed) runs, runs the missing ones over
  worker processes and appends one JSON line per run to ``runs.jsonl``;
* :mod:`.report`: Tables 1 and 2, Figures 2 and 3, and a report against the paper's numbers
  (:mod:`.reference`).
"""

from anoean.experiments.runner import Run, plan_runs, reproduce, run_one

__all__ = ["Run", "plan_runs", "reproduce", "run_one"]
