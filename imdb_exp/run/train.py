"""One experiment, as the steps `train` names: its run, its data, its model, the fit, what follows.

Each step lives in the module that knows it (tracking, data, models, fitting with epoch_end,
after_fit); this is the one module that knows them all. The command around it: cli.py.
"""

import functools
import logging
import sys
import time

import keras
from omegaconf import DictConfig

from imdb_exp.config import families, identity, schema
from imdb_exp.data import splits
from imdb_exp.models import builders
from imdb_exp.run import after_fit, resume
from imdb_exp.runtime import process
from imdb_exp.runtime.interrupts import Interrupts
from imdb_exp.sweeps import multirun, results, search
from imdb_exp.tracking import active_run, lineage, naming, record, store
from imdb_exp.training import callbacks, checkpoints, epoch_end, fitting, shared_checkpoints
from imdb_exp.training.guards import InterruptAtBatchEnd

log = logging.getLogger("imdb_exp")


def train(cfg: DictConfig, tags: dict[str, str], interrupts: Interrupts | None = None, run_id: str | None = None):
    """One experiment, or run ``run_id`` continued from its last checkpoint.

    Returns the validation accuracy of the model the run ends with (what sweeps rank by), None
    without a validation split (the test set is never a return value), or search.Pruned when an
    Optuna trial's pruner stopped it.
    """
    interrupts = interrupts or Interrupts()  # signals not handled: nothing to defer
    settings = schema.validate(cfg)
    process.use_backend(settings.trainer.backend)  # the one this module's Keras was imported with, or refused
    settings = fitted_to_model(cfg, settings)
    builders.warn_if_slow(settings.model, settings.trainer.backend)
    keras_callbacks = callbacks.built(settings.callbacks)  # a name that is none fails before the run opens
    splits.check_source(settings.data)  # and so does an archive that is not there
    trial = search.TrialReporter(settings.trial) if settings.trial.study else None
    tags = tags | identity_tags(cfg, settings)
    continuing = run_id is not None
    run_name = naming.run_name(tags, cfg)
    with active_run.tracked_run(settings.tracking, run_name, tags, run_id) as open_run:
        run_id = open_run.run.info.run_id
        # Until the run has ended, its records written: no other process may take it for one cut off meanwhile.
        open_run.let_go = checkpoints.hold(run_id)
        announce(run_name, run_id, tags, settings, continuing)
        active_run.log_config(cfg, open_run.run)
        model, trained, dataset, timings = load_and_build(settings)
        checkpoint = shared_checkpoints.RunCheckpoint(run_id, settings.tracking.uri)
        progress = continued(checkpoint, trained, run_id, settings.model) if continuing else checkpoints.Progress()
        ends = epoch_end.chosen(settings.trainer, trained, checkpoint, trial)
        try:
            fit(trained, dataset, settings, progress, ends, keras_callbacks, interrupts)
        except search.TrialPruned as pruned:  # not a failure: the search learned what it needed
            return pruned_trial(pruned.epoch, progress, checkpoint)
        active_run.log_missing_epochs(run_id, progress.history)  # epochs a server that did not answer dropped

        result = after_fit.evaluate(trained, model, dataset, settings, progress, interrupts)
        final = after_fit.metrics(result)
        active_run.log_metrics(final | timings)
        log_verdict(final, timings)
        # Written on the records thread: a sweep launched from this process goes on to its next job.
        open_run.remaining = functools.partial(after_fit.write_records, result, checkpoint)
    if not multirun.launched_here():  # a run of its own, or a launcher's worker's job, waits for them
        process.between_jobs.writer.wait()
        open_run.written.result()  # and fails if they could not be written
    log.info(store.where_to_see(store.resolve_uri(settings.tracking.uri), open_run.run.info.experiment_id, run_id))
    objective = final.get(results.OBJECTIVE)
    return None if objective is None else active_run.readable(objective)  # as logged, ranked and told


def fitted_to_model(cfg: DictConfig, settings: schema.Config) -> schema.Config:
    """The settings with a sequence length the model can take: a preset with fewer positions than
    data.maxlen caps it, said in one line; the run then records (params, config.yaml, identity) the
    length it used."""
    cap = builders.sequence_cap(settings.model, settings.data)
    if cap is None:
        return settings
    log.warning(
        "model.preset=%s takes at most %d tokens: data.maxlen=%d is cut to %d (each review's first tokens)",
        settings.model.preset,
        cap,
        settings.data.maxlen,
        cap,
    )
    cfg.data.maxlen = cap
    return schema.validate(cfg)


def load_and_build(settings: schema.Config):
    """The dataset (its datasets logged), the model built and prepared on it (its summary logged), and
    how long each took."""
    started = time.perf_counter()
    dataset = splits.load_dataset(settings.data)
    timings = {"data_prep_seconds": time.perf_counter() - started}
    lineage.log_datasets(dataset, settings.data)
    started = time.perf_counter()
    model, trained, dataset = build(settings, dataset)
    timings["prepare_seconds"] = time.perf_counter() - started
    active_run.log_model_summary(model)
    return model, trained, dataset, timings


def pruned_trial(epoch: int, progress, checkpoint) -> search.Pruned:
    """What a trial its pruner stopped records: no final model, nothing to continue."""
    reached = progress.history[search.REPORTED][epoch - 1]  # what the pruner judged
    log.info("pruned by its search after epoch %d (%s=%.4f): no test metrics or model", epoch, search.REPORTED, reached)
    active_run.log_pruned(epoch, progress.history)
    active_run.log_metrics({"epochs_trained": progress.epochs_done, "fit_seconds": progress.fit_seconds})
    checkpoint.discard()
    return search.Pruned(epoch)


def identity_tags(cfg: DictConfig, settings: schema.Config) -> dict[str, str]:
    """What identifies the run beyond its overrides: its config's hash, the code that made it, its trial."""
    tags = {record.CONFIG_HASH: identity.config_hash(cfg)} | lineage.provenance(settings.trainer.backend)
    if "test" in settings.data.unlabeled:
        tags[record.TRANSDUCTIVE] = "true"
    if settings.trial.study:
        tags |= {record.STUDY: settings.trial.study, record.TRIAL: str(settings.trial.number)}
    return tags


TRANSDUCTIVE_WARNING = (
    "transductive run: data.unlabeled has the test reviews' text (never their labels) among what the model learns "
    f"from; it is tagged {record.TRANSDUCTIVE}=true, and its test metrics are not comparable with those of runs "
    "that did not see the test text"
)


def log_verdict(final: dict[str, float], timings: dict[str, float]) -> None:
    log.info(
        "test_accuracy=%.4f test_auc=%.4f test_loss=%.4f data_prep_seconds=%.2f fit_seconds=%.1f epochs=%d",
        final["test_accuracy"],
        final["test_auc"],
        final["test_loss"],
        timings["data_prep_seconds"],
        final["fit_seconds"],
        final["epochs_trained"],
    )


def announce(run_name: str, run_id: str, tags: dict[str, str], settings: schema.Config, continuing: bool) -> None:
    """The run's first line: its name, settings and id (the one line a run killed outright leaves to resume it by)."""
    trainer = settings.trainer
    log.info(
        "run %s: %s, %s backend, %s of batch %d, seed %d; run id %s",
        run_name,
        tags.get(record.OVERRIDES) or ("its recorded config" if continuing else "the defaults"),
        trainer.backend,
        naming.counted(trainer.epochs, "epoch"),
        trainer.batch_size,
        trainer.seed,
        run_id,
    )
    if record.TRANSDUCTIVE in tags:
        log.warning(TRANSDUCTIVE_WARNING)


def build(settings: schema.Config, dataset: splits.Dataset):
    """The whole model (what is logged and served), the part that is fitted, and the inputs it fits on;
    seeded, built and compiled with the records thread kept from drawing seeds meanwhile."""
    with process.between_jobs.writer.model_seeding:
        process.start_job(keras)
        keras.utils.set_random_seed(settings.trainer.seed)
        keras.config.set_dtype_policy("mixed_bfloat16" if settings.trainer.mixed_precision else "float32")
        model = builders.build(settings.model, settings.data)
        trained, dataset = builders.prepare(model, dataset)
        builders.compile_model(trained, settings.model, settings.optimizer)
    return model, trained, dataset


def continued(checkpoint, trained, run_id: str, model: families.ModelConfig):
    """The Progress of run ``run_id`` from its checkpoint, the model set to it; StartOver when the run
    logged epochs that could not be continued exactly (a damaged checkpoint, a fixed part learned anew
    unlike the first)."""
    progress = checkpoint.restore(trained)
    unlike = model.unrepeatable_preparation()
    if progress is not None and unlike:
        checkpoint.discard()  # never to be tried again
        raise resume.StartOver(run_id, unlike)
    if progress is None and active_run.epochs_logged(run_id):
        checkpoint.discard()  # damaged: never to be tried again
        raise resume.StartOver(run_id)
    if progress is None:
        return checkpoints.Progress()
    log.info("continuing run %s after epoch %d", run_id, progress.epochs_done)
    active_run.log_missing_epochs(run_id, progress.history)
    return progress


def fit(trained, dataset, settings: schema.Config, progress, ends, keras_callbacks: list, interrupts: Interrupts):
    """The fit, its signals deferred to a batch's end, the previous job's records written meanwhile."""
    keras_callbacks = [*keras_callbacks, InterruptAtBatchEnd(interrupts)]
    verbose = 1 if sys.stdout.isatty() else 2  # a progress bar on terminals, a line per epoch in logs
    with interrupts.deferred(), process.between_jobs.writer.while_training():
        fitting.fit(trained, dataset, settings.trainer, progress, keras_callbacks, ends, verbose)
