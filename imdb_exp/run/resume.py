"""Which run a job continues: `resume=RUN_ID`, or in a sweep an earlier run of the same config.

A run's identity is its config_hash tag (identity.py). Kept free of Keras, so that a sweep job whose
config already FINISHED is settled without importing a backend.
"""

import tempfile
from dataclasses import dataclass

from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from imdb_exp.config import families, identity, schema
from imdb_exp.config.identity import override_key
from imdb_exp.errors import ConfigError
from imdb_exp.runtime.process import between_jobs
from imdb_exp.runtime.redaction import redact
from imdb_exp.tracking import record, store
from imdb_exp.training import checkpoints, shared_checkpoints

# Keys that may differ on the command line of `resume=RUN_ID`: the run is found in the store the
# command names, and it may train for more epochs than it first set out to.
RESUME_MAY_SET = ("resume", "trainer.epochs", "tracking.uri")


def why_not_continuable(client: MlflowClient, run: Run) -> str | None:
    """None if the run may be continued from its checkpoint (or from the start, having trained nothing)."""
    run_id = run.info.run_id
    if run.info.status == "FINISHED":
        return "it FINISHED; there is nothing to continue"
    if checkpoints.is_live(run_id):
        return "another live process is training it"
    if not shared_checkpoints.exists(run) and client.get_metric_history(run_id, "loss"):
        if store.is_server(client.tracking_uri):
            return "it trained some epochs but its checkpoint is neither on the tracking server nor on this machine"
        return (
            f"it trained some epochs but its checkpoint is not in {checkpoints.directory()}; "
            "resume it with the IMDB_EXP_HOME it ran with, or record to a tracking server, which keeps checkpoints"
        )
    return None


def recorded_config(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The config run ``cfg.resume`` was started with, and what the command may change of it."""
    run_id = cfg.resume
    uri = store.resolve_uri(cfg.tracking.uri)
    client = store.client(uri)
    try:  # a mistyped id is said first, not hidden behind the refusal of overrides below
        run = client.get_run(run_id)
    except MlflowException:
        raise ConfigError(f"resume={run_id}: there is no such run in {redact(uri)}") from None
    changed = {override_key(override): override for override in overrides}
    refused = [override for key, override in changed.items() if key not in RESUME_MAY_SET]
    if refused:
        raise ConfigError(
            f"resume={run_id} continues the run with the config it recorded; only trainer.epochs (to train "
            f"longer) and tracking.uri may be given with it, not: {' '.join(refused)}"
        )
    if reason := why_not_continuable(client, run):
        raise ConfigError(f"resume={run_id}: the run cannot be continued: {reason}")
    with tempfile.TemporaryDirectory() as tmp:
        recorded = identity.callbacks_by_name(OmegaConf.load(client.download_artifacts(run_id, record.CONFIG, tmp)))
    family = families.MODEL_FAMILIES.get(recorded.model.get("family"))
    if family is None:
        raise ConfigError(f"resume={run_id}: the run's model family {recorded.model.get('family')!r} is not known here")
    # The model node is typed by the run's family, as composing the run's model= option types it.
    resumed = OmegaConf.merge(OmegaConf.structured(schema.Config), {"model": OmegaConf.structured(family)}, recorded)
    resumed.tracking.uri = cfg.tracking.uri
    if "trainer.epochs" in changed:
        if cfg.trainer.epochs < resumed.trainer.epochs:
            raise ConfigError(
                f"resume={run_id}: trainer.epochs may grow from {resumed.trainer.epochs}, not shrink to "
                f"{cfg.trainer.epochs}"
            )
        resumed.trainer.epochs = cfg.trainer.epochs
    return resumed


def recorded_tags(cfg: DictConfig) -> dict[str, str]:
    """What run ``cfg.resume`` was set up with (its group choices, overrides and configuration): set
    again as it goes on, they keep its name and its first line saying what it trains."""
    tags = store.client(cfg.tracking.uri).get_run(cfg.resume).data.tags
    return {key: tags[key] for key in (*record.CHOSEN_GROUPS, record.OVERRIDES, record.CONFIG_GROUP) if key in tags}


class StartOver(Exception):
    """The run logged epochs but cannot continue from its checkpoint (damaged, or fitted on a fixed
    part that would not be prepared alike again): continued from the start, it would log those
    steps twice (MLflow cannot delete logged values), so it ends FAILED and its config trains as a new run."""

    def __init__(
        self,
        run_id: str,
        why: str = "its checkpoint is damaged, and it has logged epochs that a new start would log twice",
    ):
        super().__init__(
            f"{why}; the same config trains again as a new run, tagged {record.STARTED_OVER_FROM}={run_id}"
        )


@dataclass
class Earlier:
    run: Run
    finished: bool  # True: its result stands; False: continue it from its checkpoint


def earlier_run(cfg: DictConfig) -> Earlier | None:
    """A FINISHED run of exactly this config in the store, else one that was cut off with a checkpoint."""
    client = store.client(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    if experiment is None:
        return None
    same_config = f"tags.{record.CONFIG_HASH} = '{identity.config_hash(cfg)}'"

    def runs_of_config() -> list[Run]:
        return client.search_runs([experiment.experiment_id], same_config, order_by=["attributes.start_time DESC"])

    runs = runs_of_config()
    if any(between_jobs.writer.writing(run.info.run_id) for run in runs):
        # An earlier job of this process trained it and its records are still being written (a search
        # drew the same settings again, or a sweep repeats a job): written, it is FINISHED, and counts.
        between_jobs.writer.wait()
        runs = runs_of_config()
    finished = (run for run in runs if run.info.status == "FINISHED" and record.pruned_at(run) is None)
    if done := next(finished, None):
        return Earlier(done, finished=True)
    for run in runs:
        if shared_checkpoints.exists(run) and why_not_continuable(client, run) is None:
            return Earlier(run, finished=False)
    return None
