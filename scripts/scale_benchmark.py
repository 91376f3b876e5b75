"""How imdb-exp's costs grow with the store, the sweep and the data (docs/benchmarks.md, "How costs grow").

    python scripts/scale_benchmark.py --archive PATH store [--runs 10000] [--rounds 3]
    python scripts/scale_benchmark.py --archive PATH sweep [--jobs 100]
    python scripts/scale_benchmark.py --archive PATH data

store: an empty store against one holding RUNS earlier runs in the experiment (made through the
tracking API with the tags, params and metrics a run has, not by training), interleaved rounds:
a default run's overhead (wall time less its fit_seconds), a finished 16-job sweep launched again
(each job found done), and imdb-exp-ensemble over that sweep's parent.
sweep: one sweep process of JOBS short jobs; each job's overhead (the gap since the previous job's
run ended, plus its run's time outside model.fit) and the process's resident memory, sampled from
/proc as the jobs finish, after every tenth job.
data: the corpus built from the first 5,000 / 12,500 / 25,000 training reviews (tokenize, count,
encode), and the multi-hot and padded inputs of all 25,000 for 10,000 / 50,000 / 100,000 words.
All runs use debug=tiny (seconds-long fits): the quantities measured are those around the fit.
"""

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from benchmark import measure, publish, time_corpus_loads

from imdb_exp.tracking import record

TINY = ["debug=tiny", "tracking.system_metrics=false"]
SWEEP = ["-m", "trainer.seed=range(16)"]


def imdb_exp(*args: str, archive: Path, home: Path, program: str = "imdb-exp") -> float:
    """Wall seconds of one command, in ``home``'s store and cache."""
    command = [str(Path(sys.executable).with_name(program)), *args]
    if program == "imdb-exp":
        command.append(f"data.archive={archive}")
    env = dict(os.environ, IMDB_EXP_HOME=str(home), PYTHONUNBUFFERED="1")
    wall, _, _ = measure(command, env, home)
    return wall


def fill_store(uri: str, runs: int) -> None:
    """``runs`` finished runs in experiment imdb-exp, each with a distinct config_hash and the tags,
    params and metrics a real run has; in sweeps of 16 jobs, as the store of a long-used project."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param, RunTag

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("imdb-exp") or client.get_experiment(
        client.create_experiment("imdb-exp")
    )
    now = int(time.time() * 1000)
    parent = None
    for number in range(runs):
        if number % 16 == 0:
            sweep = {record.SWEEP: "trainer.seed=range(16)"}
            parent = client.create_run(experiment.experiment_id, tags=sweep).info.run_id
        run = client.create_run(experiment.experiment_id, run_name=f"seed={number % 16}").info.run_id
        tags = {
            record.CONFIG_HASH: uuid.uuid4().hex,
            record.CONFIG_GROUP: f"dense rmsprop epochs={number % 7 + 1}",
            record.PARENT: parent,
            record.JOB: str(number % 16),
            "model": "dense",
            "optimizer": "rmsprop",
        }
        params = {f"trainer.p{k}": str(k) for k in range(20)}
        metrics = {name: 0.5 + number % 100 / 1000 for name in ("test_accuracy", "final_val_accuracy", "fit_seconds")}
        client.log_batch(
            run,
            metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag(k, v) for k, v in tags.items()],
        )
        client.set_terminated(run, "FINISHED")


def last_fit_seconds(home: Path) -> float:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("imdb-exp").experiment_id
    (run,) = client.search_runs(experiment, order_by=["start_time DESC"], max_results=1)  # the run just made
    return run.data.metrics["fit_seconds"]


def last_parent(home: Path) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("imdb-exp").experiment_id
    (run,) = client.search_runs(experiment, "tags.sweep != ''", order_by=["start_time DESC"], max_results=1)
    return run.info.run_id


def store_growth(args: argparse.Namespace, workdir: Path, cache: Path) -> str:
    homes = {"empty": workdir / "empty", f"{args.runs} runs": workdir / "full"}
    for name, home in homes.items():
        home.mkdir()
        (home / "cache").symlink_to(cache)
        from mlflow import MlflowClient

        MlflowClient(f"sqlite:///{home / 'mlflow.db'}").search_experiments()
        if name != "empty":
            started = time.perf_counter()
            fill_store(f"sqlite:///{home / 'mlflow.db'}", args.runs)
            print(f"{args.runs} runs made in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        imdb_exp(*SWEEP, *TINY, archive=args.archive, home=home)  # the sweep to launch again, finished
    results: dict[str, dict[str, list[float]]] = {name: {} for name in homes}
    for round_ in range(args.rounds):
        for name in list(homes) if round_ % 2 == 0 else list(homes)[::-1]:
            home, got = homes[name], results[name]
            wall = imdb_exp(*TINY, archive=args.archive, home=home)
            got.setdefault("default run: overhead (wall - fit) s", []).append(wall - last_fit_seconds(home))
            got.setdefault("16-job sweep launched again: wall s", []).append(
                imdb_exp(*SWEEP, *TINY, archive=args.archive, home=home)
            )
            parent = last_parent(home)
            got.setdefault("imdb-exp-ensemble over its parent: wall s", []).append(
                imdb_exp(parent, archive=args.archive, home=home, program="imdb-exp-ensemble")  # fmt: skip
            )
            print(f"round {round_ + 1} {name}: { ({k: v[-1] for k, v in got.items()}) }", file=sys.stderr, flush=True)
    empty, full = results.values()
    lines = [
        f"### Store growth: an empty store against {args.runs} earlier runs, {args.rounds} interleaved rounds",
        "",
        f"| quantity | empty (median) | {args.runs} runs (median) | ratio | all empty | all {args.runs} runs |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for quantity in empty:
        a, b = statistics.median(empty[quantity]), statistics.median(full[quantity])
        every = [", ".join(f"{v:.2f}" for v in values[quantity]) for values in (empty, full)]
        lines.append(f"| {quantity} | {a:.2f} | {b:.2f} | {b / a:.2f}x | {every[0]} | {every[1]} |")
    return "\n".join(lines + [""])


def resident_gib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def finished_jobs(database: Path) -> int:
    """Sweep jobs ended so far, read without MLflow (which would migrate a store being created)."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
            query = "SELECT COUNT(*) FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid"
            return db.execute(query + " WHERE t.key = 'sweep_job' AND r.status = 'FINISHED'").fetchone()[0]
    except sqlite3.Error:
        return 0


def sweep_growth(args: argparse.Namespace, workdir: Path, cache: Path) -> str:
    from mlflow import MlflowClient

    home = workdir / "sweep"
    home.mkdir()
    (home / "cache").symlink_to(cache)
    command = [str(Path(sys.executable).with_name("imdb-exp")), "-m", f"trainer.seed=range({args.jobs})", *TINY,
               f"data.archive={args.archive}", "tracking.log_model=false"]  # fmt: skip
    env = dict(os.environ, IMDB_EXP_HOME=str(home))
    process = subprocess.Popen(command, env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    memory = {}
    while process.poll() is None:
        done = finished_jobs(home / "mlflow.db")
        if done and done % 10 == 0 and done not in memory:
            memory[done] = resident_gib(process.pid)
        time.sleep(0.05)
    if process.returncode:
        sys.exit(f"scale_benchmark: the sweep exited with {process.returncode}")
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("imdb-exp").experiment_id
    jobs = sorted(client.search_runs(experiment, f"tags.{record.JOB} != ''", max_results=10000),
                  key=lambda run: int(run.data.tags[record.JOB]))  # fmt: skip
    overheads = []
    for previous, job in zip([None, *jobs], jobs, strict=False):
        outside_fit = (job.info.end_time - job.info.start_time) / 1000 - job.data.metrics["fit_seconds"]
        gap = 0.0 if previous is None else (job.info.start_time - previous.info.end_time) / 1000
        overheads.append(outside_fit + gap)
    first, last = statistics.median(overheads[1:11]), statistics.median(overheads[-10:])
    if args.figure:
        draw(args.figure, f"One sweep process, {args.jobs} jobs", [
            ("job", "overhead s (gap + run outside fit)", {"": (range(1, len(overheads) + 1), overheads)}),
            ("jobs done", "resident memory GiB", {"": (list(memory), list(memory.values()))}),
        ])  # fmt: skip
    lines = [
        f"### Sweep growth: {args.jobs} jobs of debug=tiny in one process",
        "",
        "| quantity | jobs 2-11 | last 10 jobs | ratio |",
        "| --- | ---: | ---: | ---: |",
        f"| per-job overhead s (median) | {first:.3f} | {last:.3f} | {last / first:.2f}x |",
        f"| resident memory GiB (after job 10, after job {args.jobs}) | {memory.get(10, 0):.3f} "
        f"| {memory.get(args.jobs, max(memory.values())):.3f} | "
        f"{memory.get(args.jobs, max(memory.values())) / memory[10]:.2f}x |",
        "",
        "Resident memory after every tenth job (GiB): "
        + ", ".join(f"{done}: {gib:.3f}" for done, gib in sorted(memory.items())),
        "",
    ]
    return "\n".join(lines)


def median_seconds(work, *args, repeats: int = 3) -> float:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        work(*args)
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def data_growth(args: argparse.Namespace, cache: Path) -> str:
    import collections

    import numpy as np

    from imdb_exp.config.schema import DataConfig
    from imdb_exp.data import corpus, splits

    texts = corpus._read_reviews(args.archive)["train"]
    order = np.random.default_rng(0).permutation(len(texts))  # both labels in every subset
    lines = ["### Data growth (median of 3)", "", "| what | size | seconds |", "| --- | ---: | ---: |"]
    built_curve, encoded_curves = ([], []), {"multihot": ([], []), "padded": ([], [])}

    def built(subset) -> None:  # what building the corpus does after reading the archive
        counts = collections.Counter()
        for _, text in subset:
            counts.update(corpus.tokenize(text))
        index = corpus.word_index(sorted(counts, key=lambda word: (-counts[word], word)))
        corpus.Reviews.from_lists([corpus.encode_text(t, index) for _, t in subset], [label for label, _ in subset])

    for count in (5000, 12500, 25000):
        seconds = median_seconds(built, [texts[i] for i in order[:count]])
        lines.append(f"| corpus built (tokenize, count, encode) | {count} reviews | {seconds:.2f} |")
        built_curve[0].append(count), built_curve[1].append(seconds)
    reviews = corpus.load_corpus(str(args.archive), cache).train
    for words in (10_000, 50_000, 100_000):
        for encoding, encode in (("multihot", splits.encode_multihot), ("padded", splits.encode_padded)):
            data = DataConfig(num_words=words, encoding=encoding, maxlen=500)
            seconds = median_seconds(encode, reviews, data)
            lines.append(f"| {encoding} inputs of 25,000 reviews | {words} words | {seconds:.2f} |")
            encoded_curves[encoding][0].append(words), encoded_curves[encoding][1].append(seconds)
    if args.figure:
        draw(args.figure, "Data growth", [
            ("training reviews", "corpus built, s", {"": built_curve}),
            ("vocabulary (data.num_words)", "inputs of 25,000 reviews, s", encoded_curves),
        ])  # fmt: skip
    return "\n".join(lines + [""])


def draw(path: Path, title: str, panels: list[tuple[str, str, dict]]) -> None:
    """Side-by-side panels of (x label, y label, {curve name: (xs, ys)}), saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), layout="constrained")
    for ax, (x_label, y_label, curves) in zip(axes, panels, strict=True):
        for name, (xs, ys) in curves.items():
            ax.plot(list(xs), list(ys), marker="o", markersize=3, label=name or None)
        ax.set(xlabel=x_label, ylabel=y_label, ylim=(0, None))
        if any(curves):
            ax.legend()
    figure.suptitle(title)
    figure.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--markdown", type=Path, help="append the tables to this file")
    parser.add_argument("--figure", type=Path, help="draw the curves (sweep, data) into this PNG")
    parser.add_argument("what", choices=("store", "sweep", "data"))
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=100)
    args = parser.parse_args()
    args.archive = args.archive.resolve()
    with tempfile.TemporaryDirectory(prefix="imdb-exp-scale-") as workdir:
        cache = Path(workdir) / "cache"
        time_corpus_loads(args.archive, cache)
        if args.what == "store":
            table = store_growth(args, Path(workdir), cache)
        elif args.what == "sweep":
            table = sweep_growth(args, Path(workdir), cache)
        else:
            table = data_growth(args, cache)
    publish(table, args.markdown)


if __name__ == "__main__":
    main()
