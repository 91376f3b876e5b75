"""imdb-exp against a plain Keras script of the same experiment: interleaved runs, medians, ratios.

    python scripts/benchmark.py --archive PATH --model dense --rounds 3 [--epochs N] [--backend jax] \
        [--markdown results.md] [-- extra imdb-exp overrides]

Each round runs scripts/plain_keras.py and `python -m imdb_exp` once each, in alternating order, as
separate processes. Before the rounds imdb-exp's tokenized cache is built in a fresh home, timed
(the first tokenization) and loaded once more (a cached load); the rounds then measure the warm path
a user gets from the second run on. Per process: wall time, peak resident memory (the kernel's
maxrss of the process), data preparation time and time per epoch as each reports them (the
median over epochs after the first, whose time includes tracing and compilation, when there are
several), and test accuracy.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, str]:
    """Wall seconds, peak RSS in GiB and stdout of one process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, text=True)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if code := os.waitstatus_to_exitcode(status):
        sys.exit(f"benchmark: {' '.join(command)} exited with {code}")
    return wall, usage.ru_maxrss / 2**20, stdout


def steady_epoch(seconds: list[float]) -> float:
    return statistics.median(seconds[1:] if len(seconds) > 1 else seconds)


class Runner:
    """`python -m imdb_exp` in its own home and MLflow store; its figures are read back from the store."""

    def __init__(self, workdir: Path, args: argparse.Namespace):
        self.workdir, self.uri = workdir, f"sqlite:///{workdir}/mlflow.db"
        self.env = dict(os.environ, IMDB_EXP_HOME=str(workdir / "home"), KERAS_BACKEND=args.backend)
        self.command = [
            sys.executable,
            "-m",
            "imdb_exp",
            f"model={args.model}",
            f"data.archive={args.archive}",
            f"trainer.backend={args.backend}",
            f"tracking.uri={self.uri}",
            "hydra.run.dir=outputs/${now:%H-%M-%S.%f}",
            *([f"trainer.epochs={args.epochs}"] if args.epochs else []),
            *args.overrides,
        ]

    def run(self) -> dict[str, float]:
        from mlflow import MlflowClient

        # Run from the work folder: the installed imdb_exp, not a source tree in the current directory.
        wall, rss, _ = measure(self.command, self.env, self.workdir)
        client = MlflowClient(self.uri)
        (run,) = client.search_runs(
            client.search_experiments()[0].experiment_id, order_by=["start_time DESC"], max_results=1
        )
        epochs = [
            m.value for m in sorted(client.get_metric_history(run.info.run_id, "epoch_seconds"), key=lambda m: m.step)
        ]
        metrics = run.data.metrics
        return dict(
            wall_seconds=wall,
            peak_rss_gib=rss,
            data_prep_seconds=metrics["data_prep_seconds"],
            epoch_seconds=steady_epoch(epochs),
            test_accuracy=metrics["test_accuracy"],
        )


class PlainScript:
    def __init__(self, args: argparse.Namespace):
        self.env = dict(os.environ, KERAS_BACKEND=args.backend, TF_CPP_MIN_LOG_LEVEL="2")
        self.command = [sys.executable, str(HERE / "plain_keras.py"), str(args.archive), f"--model={args.model}"]
        self.command += [f"--epochs={args.epochs}"] if args.epochs else []

    def run(self) -> dict[str, float]:
        wall, rss, stdout = measure(self.command, self.env, HERE)
        reported = json.loads(stdout.strip().splitlines()[-1])
        return dict(
            wall_seconds=wall,
            peak_rss_gib=rss,
            data_prep_seconds=reported["data_prep_seconds"],
            epoch_seconds=steady_epoch(reported["epoch_seconds"]),
            test_accuracy=reported["test_accuracy"],
        )


def time_corpus_loads(archive: Path, cache: Path) -> tuple[float, float]:
    """Seconds to tokenize the archive into an empty cache, then to load it from that cache."""
    from imdb_exp.data.corpus import load_corpus

    seconds = []
    for _ in range(2):
        started = time.perf_counter()
        load_corpus(str(archive), cache)
        seconds.append(time.perf_counter() - started)
    return seconds[0], seconds[1]


def report(args: argparse.Namespace, corpus_loads: tuple[float, float], results: dict[str, list[dict]]) -> str:
    extra = " ".join(args.overrides)
    lines = [
        f"### {args.model}, {args.backend}, {args.rounds} interleaved rounds"
        + (f", {args.epochs} epochs" if args.epochs else "")
        + (f", imdb-exp `{extra}`" if extra else ""),
        "",
        "| quantity | plain Keras (median) | imdb-exp (median) | imdb-exp / plain | all plain | all imdb-exp |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for quantity in ("wall_seconds", "peak_rss_gib", "data_prep_seconds", "epoch_seconds", "test_accuracy"):
        plain, ours = ([r[quantity] for r in results[who]] for who in ("plain", "runner"))
        p, o = statistics.median(plain), statistics.median(ours)
        lines.append(
            f"| {quantity} | {p:.4g} | {o:.4g} | {o / p:.2f}x | {', '.join(f'{v:.4g}' for v in plain)}"
            f" | {', '.join(f'{v:.4g}' for v in ours)} |"
        )
    cold, warm = corpus_loads
    lines += ["", f"imdb-exp's corpus: first tokenization {cold:.2f} s, cached load {warm:.2f} s", ""]
    return "\n".join(lines)


def publish(table: str, markdown: Path | None) -> None:
    """The table on stdout, and appended to ``markdown`` when given."""
    print(table)
    if markdown:
        with markdown.open("a") as f:
            f.write(table + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive", type=Path, required=True)
    parser.add_argument("--model", default="dense", choices=["dense", "lstm", "lstm_dropout", "cnn_lstm"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, help="default: each experiment's own")
    parser.add_argument("--backend", default="tensorflow", choices=["tensorflow", "jax", "torch"])
    parser.add_argument("--markdown", type=Path, help="append the table to this file")
    parser.add_argument("overrides", nargs="*", help="extra imdb-exp overrides (after --)")
    args = parser.parse_args()
    args.archive = args.archive.resolve()

    with tempfile.TemporaryDirectory(prefix="imdb-exp-bench-") as workdir:
        runner, plain = Runner(Path(workdir), args), PlainScript(args)
        corpus_loads = time_corpus_loads(args.archive, Path(workdir) / "home" / "cache")
        results: dict[str, list[dict]] = {"plain": [], "runner": []}
        for round_ in range(args.rounds):
            order = [("plain", plain), ("runner", runner)]
            for who, contender in order if round_ % 2 == 0 else reversed(order):
                results[who].append(contender.run())
                print(f"round {round_ + 1} {who}: {json.dumps(results[who][-1])}", file=sys.stderr, flush=True)
    publish(report(args, corpus_loads, results), args.markdown)


if __name__ == "__main__":
    main()
