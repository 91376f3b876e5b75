"""What a checkpoint costs per epoch: on the local disk alone, and also sent to a tracking server.

    python scripts/checkpoint_cost.py [--rounds 20] [--markdown docs/benchmarks.md]

For each model (the dense default and the LSTM, built as their configs say, with the optimizer
state a fitted model has), the time of RunCheckpoint.save for a run of a local SQLite store and for
a run of a real `mlflow server` on 127.0.0.1 (artifacts proxied into a temporary folder), measured
in turns (one save of each a round), `--rounds` rounds; medians, and the file's size. No data is
read: a checkpoint's cost is that of the model's variables, whatever the reviews.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from scripts.benchmark import publish  # noqa: E402
from tests.support.cluster import LocalCluster  # noqa: E402


def fitted_model(model_option: str):
    """The model as imdb-exp builds and compiles it, its optimizer state made by one step."""
    import numpy as np
    from hydra import compose, initialize_config_module

    from imdb_exp.config import schema
    from imdb_exp.models import builders

    schema.register()
    with initialize_config_module("imdb_exp.conf", version_base="1.3"):
        settings = schema.validate(compose("config", overrides=[f"model={model_option}"]))
    model = builders.compile_model(builders.build(settings.model, settings.data), settings.model, settings.optimizer)
    shape = (8, *model.inputs[0].shape[1:])
    x = np.ones(shape, dtype=model.inputs[0].dtype)
    model.fit(x, np.ones(8, "float32"), batch_size=8, epochs=1, verbose=0)
    return model


def seconds_per_save(checkpoints: dict, model, rounds: int) -> dict[str, list[float]]:
    """Each checkpoint saved once a round, in turns."""
    from imdb_exp.training.checkpoints import Progress

    times = {name: [] for name in checkpoints}
    for epoch in range(1, rounds + 1):
        progress = Progress(epochs_done=epoch, history={"loss": [0.5] * epoch})
        for name, checkpoint in checkpoints.items():
            started = time.perf_counter()
            checkpoint.save(model, progress)
            times[name].append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--markdown", type=Path, help="append the table to this file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, LocalCluster(Path(folder) / "server") as services:
        os.environ["IMDB_EXP_HOME"] = str(Path(folder) / "home")
        from mlflow.tracking import MlflowClient

        from imdb_exp.training import checkpoints
        from imdb_exp.training.shared_checkpoints import RunCheckpoint

        server = services.mlflow_server(f"sqlite:///{folder}/server.db")
        local = f"sqlite:///{folder}/local.db"
        rows = []
        for option in ("dense", "lstm"):
            model = fitted_model(option)
            runs = {}
            for uri in (local, server):
                client = MlflowClient(uri)
                runs[uri] = client.create_run(client.create_experiment(f"{option}-{len(runs)}")).info.run_id
            timings = seconds_per_save({uri: RunCheckpoint(run, uri) for uri, run in runs.items()}, model, args.rounds)
            size = checkpoints.path(runs[local]).stat().st_size / 2**20
            local_ms, server_ms = (statistics.median(timings[uri]) * 1000 for uri in (local, server))
            rows.append(f"| {option} | {size:.1f} | {local_ms:.1f} | {server_ms:.1f} | {server_ms - local_ms:.1f} |")
    header = [
        "| model | checkpoint MiB | local disk, ms | local disk + server, ms | the server's share, ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    publish("\n".join(header + rows), args.markdown)


if __name__ == "__main__":
    main()
