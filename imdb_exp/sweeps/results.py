"""A sweep's results as its parent run shows them: a row per job, the table as CSV and Markdown, and the
parent's description (MLflow's run note, which the UI renders): each job's name linked to its page,
the best marked, pruned and failed jobs said so."""

import collections
import csv
import io

from imdb_exp.tracking import naming, record, store

OBJECTIVE = "final_val_accuracy"  # what sweeps rank by: the validation accuracy of the model each job keeps
TRANSDUCTIVE_NOTE = "transductive: learned from the test reviews' text"
COLUMNS = ["job", "run", "status", "test_accuracy", "test_auc", "test_loss", OBJECTIVE, "best_epoch", "fit_seconds",
           "note"]  # fmt: skip


def row(job: str, run, parent_run_id: str) -> dict:
    """A job's row: its run's name and outcome; ``note`` says why it did not simply finish here."""
    metrics, pruned = run.data.metrics, record.pruned_at(run)
    if record.parent_of(run) != parent_run_id:
        note = "already done (an earlier run of this config)"
    elif pruned is not None:
        note = f"pruned after epoch {pruned}"
    else:
        note = record.failure(run) or (TRANSDUCTIVE_NOTE if record.transductive(run) else "")
    return {
        "job": job,
        "run": run.info.run_name,
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "configuration": run.data.tags.get(record.CONFIG_GROUP, ""),
        "overrides": run.data.tags.get(record.OVERRIDES, ""),
        "status": run.info.status,
        "pruned": pruned is not None,
        "transductive": record.transductive(run),
        **{key: metrics.get(key) for key in ("test_accuracy", "test_auc", "test_loss", OBJECTIVE)},
        "best_epoch": int(metrics["best_epoch"]) if "best_epoch" in metrics else None,
        "fit_seconds": metrics.get("fit_seconds"),
        "note": note,
    }


def best(rows: list[dict]) -> dict | None:
    """The job that finished with a model of the highest validation accuracy (a pruned trial has none)."""
    scored = [row for row in rows if row["status"] == "FINISHED" and not row["pruned"] and row[OBJECTIVE] is not None]
    return max(scored, key=lambda row: row[OBJECTIVE], default=None)


OUTCOMES = ("finished", "pruned", "failed", "stopped", "running", "scheduled")


def outcome(row: dict) -> str:
    """How a job ended, in a word a reader scans for: one of OUTCOMES."""
    if row["pruned"]:
        return "pruned"
    return {"FINISHED": "finished", "FAILED": "failed", "KILLED": "stopped"}.get(row["status"], row["status"].lower())


def tally(rows: list[dict]) -> str:
    """How the jobs ended, counted: "2 finished, 6 pruned"."""
    counts = collections.Counter(outcome(row) for row in rows)
    return ", ".join(f"{counts[word]} {word}" for word in [*OUTCOMES, *(counts.keys() - OUTCOMES)] if counts[word])


def cell(value) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def to_csv(rows: list[dict], columns: list[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows({key: cell(row[key]) for key in columns} for row in rows)
    return out.getvalue()


def to_markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(row[key]).replace("|", "/") for key in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def description(name: str, rows: list[dict], over_seeds: str | None = None) -> str:
    """The parent's note: how its jobs ended and the best, what its seeds or folds tell apart
    (``over_seeds``, where it has them: its best job is then one seed's luck), then each job linked to
    its page, the best marked."""
    top = best(rows)
    chosen = f"best **{top['run']}**, {OBJECTIVE} {cell(top[OBJECTIVE])}" if top else "no best: none finished"
    lines = [
        f"**{name}**: {naming.counted(len(rows), 'job')} ({tally(rows)}); {chosen}. "
        f"Ranked by `{OBJECTIVE}` (validation); the test set never chose."
    ]
    if over_seeds:
        lines += [
            "",
            f"Over the seeds or folds of each configuration (`{record.SWEEP_SUMMARY_MD}`):",
            "",
            over_seeds.rstrip(),
        ]
    lines += ["", "| job | outcome | " + OBJECTIVE + " | test_accuracy | note |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        link = f"[{r['run'].replace('|', '/')}]({store.run_page(r['experiment_id'], r['run_id'])})"
        marked = f"**{link}** (best)" if r is top else link
        lines.append(f"| {marked} | {outcome(r)} | {cell(r[OBJECTIVE])} | {cell(r['test_accuracy'])} | {r['note']} |")
    return "\n".join(lines) + "\n"


def common_params(runs: list) -> dict[str, str]:
    """The params every job's run holds with one value: the settings the sweep did not vary."""
    if not runs:
        return {}
    shared = dict(runs[0].data.params)
    for run in runs[1:]:
        shared = {key: value for key, value in shared.items() if run.data.params.get(key) == value}
    return shared
