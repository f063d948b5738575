"""`python -m core search --backend ray`: the same trials run through Ray Tune (optional: Ray is not a requirement)."""

from __future__ import annotations

import importlib.util

from core.errors import UserError


def check_ray() -> None:
    """One sentence when Ray Tune cannot be imported."""
    if importlib.util.find_spec("ray") is None:
        raise UserError(
            "--backend ray needs Ray, which is not installed (pip install 'ray[tune]'); without it, run trials with "
            "--jobs, or share one study between machines with --storage."
        )


def optimize_ray(search, address: str | None):
    """Run the search's trial loop (core.search.optimize, the same Optuna study) in --jobs Ray tasks at once, on a local
    Ray or the cluster at address: each task is one more process on the shared storage, so trials spread over the nodes.
    Every node must reach the storage (--storage with a database URL) and the runs folder (PFT_RUNS_DIR)."""
    import copy
    import os

    import ray

    from core import search as search_mod

    if address and not search.storage:
        raise UserError(
            "On a Ray cluster every node must reach the study: give --storage with a database URL, such as postgresql://HOST/DB."
        )
    env = {k: v for k, v in os.environ.items() if k.startswith(("PFT_", "HF_", "TRANSFORMERS_")) and k != "PFT_RUN_TOKEN"}
    env["RAY_worker_niceness"] = "0"  # Ray starts task workers at nice 15; the trials they run are the work, not a side job
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=True, runtime_env={"env_vars": env})

    @ray.remote(num_cpus=1)
    def worker(search) -> int:
        study = search_mod.optimize(search, log=print)
        return search_mod.count(study)

    one = copy.copy(search)
    one.jobs = 1  # each task runs one trial at a time; --jobs tasks run at once
    ray.get([worker.remote(one) for _ in range(search.jobs)])
    return search_mod.load_study(search)
