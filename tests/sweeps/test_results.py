"""A sweep's results as its parent run tells them: how its jobs ended, counted, and the best named first."""

from imdb_exp.sweeps import results
from imdb_exp.tracking import record


def row(run: str, status: str, value: float | None, pruned: bool = False) -> dict:
    return {"run": run, "run_id": f"id-{run}", "experiment_id": "1", "status": status, "pruned": pruned,
            results.OBJECTIVE: value, "test_accuracy": value, "note": ""}  # fmt: skip


def test_the_description_counts_how_the_jobs_ended_and_names_the_best_in_its_first_line():
    rows = [
        row("trial 0", "FINISHED", 0.61),
        row("trial 1", "FINISHED", 0.70, pruned=True),  # judged after an epoch: never the best
        row("trial 2", "FINISHED", 0.65),
        row("trial 3", "FAILED", None),
        row("trial 4", "KILLED", None),
    ]
    first = results.description("search lr, 5 trials", rows).splitlines()[0]
    assert first.startswith(
        "**search lr, 5 trials**: 5 jobs (2 finished, 1 pruned, 1 failed, 1 stopped); "
        f"best **trial 2**, {results.OBJECTIVE} 0.6500."
    )
    assert results.tally([row("a", "RUNNING", None), row("b", "FINISHED", 0.5)]) == "1 finished, 1 running"


def test_a_sweep_none_of_whose_jobs_finished_names_no_best():
    first = results.description("sweep seed, 1 job", [row("seed=0", "FAILED", None)]).splitlines()[0]
    assert "1 job (1 failed); no best: none finished." in first


def test_a_seed_sweeps_description_says_what_its_seeds_tell_apart_before_its_jobs():
    verdict = "- final_val_accuracy: best `adam`, mean 0.8800 (n=3).\n"
    text = results.description("sweep optimizer x seed, 2 jobs", [row("adam seed=0", "FINISHED", 0.88)], verdict)
    lines = text.splitlines()
    assert lines[2] == f"Over the seeds or folds of each configuration (`{record.SWEEP_SUMMARY_MD}`):"
    assert (
        lines[4] == verdict.strip()
        and lines.index("| job | outcome | final_val_accuracy | test_accuracy | note |") == 6
    )
