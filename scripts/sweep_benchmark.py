"""How much of a sweep's wall time goes into training: interleaved runs of one sweep, medians.

    python scripts/sweep_benchmark.py --archive PATH [--rounds 3] [--checkout DIR ...] \
        [--markdown results.md] [-- sweep overrides; default: +experiment=dlwp_variants]

Each round runs `python -m imdb_exp -m OVERRIDES data.archive=PATH` once per checkout (the installed
package, or each --checkout directory put first on PYTHONPATH, e.g. a git worktree of an older
commit), in alternating order, each in its own home (the corpus cache built beforehand) and MLflow
store (its tables created beforehand, as after a first run). From the process and its store: wall
time; the jobs' summed fit_seconds (model.fit only) and their share of the wall time; start-up
(process start to the first job's run); the overhead per job (the first job's start to the last
job's end, less the summed fit, over the jobs); wind-down (the last job's end to the process exit:
the sweep's table, waiting for records); and that every job FINISHED with its logged model.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmark import measure, publish, time_corpus_loads

from imdb_exp.tracking import record

QUANTITIES = (
    "wall_seconds",
    "summed_fit_seconds",
    "fit_share",
    "start_up_seconds",
    "per_job_overhead_seconds",
    "wind_down_seconds",
)


def commit_of(checkout: Path | None) -> str:
    where = checkout or Path(__file__).parent
    found = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() or "installed"


class Sweep:
    def __init__(self, workdir: Path, cache: Path, checkout: Path | None, args: argparse.Namespace):
        self.workdir, self.uri, self.name = workdir, f"sqlite:///{workdir}/mlflow.db", commit_of(checkout)
        shutil.copytree(cache, workdir / "home" / "cache")
        from mlflow import MlflowClient

        MlflowClient(self.uri).search_experiments()  # the store's tables exist, as after a first run
        self.env = dict(os.environ, IMDB_EXP_HOME=str(workdir / "home"))
        if checkout:
            self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(checkout), os.environ.get("PYTHONPATH")]))
        self.command = [
            sys.executable,
            "-m",
            "imdb_exp",
            "-m",
            *args.overrides,
            f"data.archive={args.archive}",
            f"tracking.uri={self.uri}",
            "hydra.sweep.dir=multirun/${now:%H-%M-%S.%f}",
        ]

    def run(self) -> dict[str, float]:
        from mlflow import MlflowClient

        started = time.time()
        wall, _, _ = measure(self.command, self.env, self.workdir)
        ended = started + wall
        client = MlflowClient(self.uri)
        experiment = client.search_experiments()[0].experiment_id
        (parent,) = client.search_runs(experiment, "tags.sweep != ''", order_by=["start_time DESC"], max_results=1)
        jobs = client.search_runs(experiment, f"tags.{record.PARENT} = '{parent.info.run_id}'")
        unfinished = [j.info.run_name for j in jobs if j.info.status != "FINISHED" or not j.outputs.model_outputs]
        if unfinished:
            sys.exit(f"sweep_benchmark: jobs without a FINISHED run and a logged model: {unfinished}")
        fit = sum(j.data.metrics["fit_seconds"] for j in jobs)
        first_start = min(j.info.start_time for j in jobs) / 1000
        last_end = max(j.info.end_time for j in jobs) / 1000
        return dict(
            jobs=len(jobs),
            wall_seconds=wall,
            summed_fit_seconds=fit,
            fit_share=fit / wall,
            start_up_seconds=first_start - started,
            per_job_overhead_seconds=(last_end - first_start - fit) / len(jobs),
            wind_down_seconds=ended - last_end,
        )


def report(args: argparse.Namespace, results: dict[str, list[dict]]) -> str:
    names = list(results)
    jobs = results[names[0]][0]["jobs"]
    lines = [
        f"### `imdb-exp -m {' '.join(args.overrides)}`: {jobs} jobs, {args.rounds} interleaved rounds",
        "",
        "| quantity | "
        + " | ".join(f"{name} (median)" for name in names)
        + " | "
        + " | ".join(f"all {n}" for n in names)
        + " |",
        "| --- |" + " ---: |" * len(names) + " --- |" * len(names),
    ]
    for quantity in QUANTITIES:
        values = [[r[quantity] for r in results[name]] for name in names]
        medians = " | ".join(f"{statistics.median(v):.3g}" for v in values)
        every = " | ".join(", ".join(f"{x:.3g}" for x in v) for v in values)
        lines.append(f"| {quantity} | {medians} | {every} |")
    return "\n".join(lines + [""])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--checkout", type=Path, action="append", help="a source tree to measure (repeatable)")
    parser.add_argument("--markdown", type=Path, help="append the table to this file")
    parser.add_argument("overrides", nargs="*", help="the sweep's overrides (after --)")
    args = parser.parse_args()
    args.archive = args.archive.resolve()
    args.overrides = args.overrides or ["+experiment=dlwp_variants"]
    checkouts = [c.resolve() for c in args.checkout] if args.checkout else [None]

    with tempfile.TemporaryDirectory(prefix="imdb-exp-sweep-bench-") as workdir:
        cache = Path(workdir) / "cache"
        time_corpus_loads(args.archive, cache)
        results: dict[str, list[dict]] = {}
        for round_ in range(args.rounds):
            order = checkouts if round_ % 2 == 0 else checkouts[::-1]
            for checkout in order:
                sweep = Sweep(Path(tempfile.mkdtemp(dir=workdir)), cache, checkout, args)
                results.setdefault(sweep.name, []).append(sweep.run())
                print(
                    f"round {round_ + 1} {sweep.name}: {json.dumps(results[sweep.name][-1])}",
                    file=sys.stderr,
                    flush=True,
                )
    publish(report(args, results), args.markdown)


if __name__ == "__main__":
    main()
