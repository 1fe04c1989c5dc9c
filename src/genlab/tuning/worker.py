"""One worker process of ``genlab tune --workers K``: ``python -m genlab.tuning.worker JOB.json``.

The job file (written by :func:`genlab.tuning.search.run_workers`) gives the study setup, how many trials to run,
the sampler and pruner by name, the deadline and a stop file. The worker loads the study from its storage, seeds
its sampler from the seed, its index and the trials already recorded, runs its trials with its share of the cores,
and writes ``{"ok": true, "trials": n}`` or ``{"ok": false, "type": ..., "error": ...}`` to the result file.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path


def run_job(job: dict) -> int:
    """Run the trials of one worker job; returns how many ran."""
    import torch

    from .search import Setup, make_pruner, make_sampler, open_storage, require_optuna, sampler_seed, trial_loop

    optuna = require_optuna()
    optuna.logging.set_verbosity(job["optuna_verbosity"])
    setup = Setup.from_payload(job["setup"])
    torch.set_num_threads(setup.threads or 1)
    study = optuna.load_study(study_name=setup.study_name, storage=open_storage(setup.url),
                              pruner=make_pruner(job["pruner"]))
    study.sampler = make_sampler(job["sampler"], sampler_seed(job["seed"], job["index"],
                                                              len(study.get_trials(deepcopy=False))), parallel=True)
    return trial_loop(setup, study, job["trials"], deadline=job["deadline"], stop_file=Path(job["stop_file"]))


def main(argv: list[str] | None = None) -> int:
    from ..config import read_json
    from ..errors import GenlabError
    from ..io.atomic import write_json_atomic

    path = Path((argv if argv is not None else sys.argv[1:])[0])
    job = read_json(path)
    logging.basicConfig(level=job["log_level"],
                        format=f"%(levelname)s %(name)s [worker {job['index']}]: %(message)s")
    try:
        n = run_job(job)
    except GenlabError as e:
        write_json_atomic(job["result"], {"ok": False, "type": type(e).__name__,
                                          "error": str(e).splitlines()[0] if str(e) else type(e).__name__})
        return 2
    except KeyboardInterrupt:
        write_json_atomic(job["result"], {"ok": False, "type": "KeyboardInterrupt", "error": "interrupted"})
        return 130
    except Exception as e:
        write_json_atomic(job["result"], {"ok": False, "type": type(e).__name__, "error": f"worker {job['index']}: "
                                          f"{type(e).__name__}: {e}"})
        raise
    write_json_atomic(job["result"], {"ok": True, "trials": n})
    return 0


if __name__ == "__main__":  # pragma: no cover - run as a process
    sys.exit(main())
