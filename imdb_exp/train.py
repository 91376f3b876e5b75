"""The imdb-exp command: compose the config, then data -> model -> fit -> evaluate -> track.

This is the one module that knows all the others; the behaviour lives in conf/ and in them.
"""

import gc
import logging
import os
import sys
import time
from importlib.metadata import version

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.types import RunMode
from omegaconf import DictConfig

from hydra_plugins.imdb_exp_optuna.optuna_sweeper import OptunaSweeper
from imdb_exp import launchers, quiet, recorder, resume, schema, search, store, sweep
from imdb_exp.interrupts import Interrupted, Interrupts, signal_of
from imdb_exp.redaction import redact, redact_log_records

schema.register()
launchers.register()
# Hydra finds sweepers by listing the hydra_plugins namespace, which an editable install hides from it.
Plugins.instance().register(OptunaSweeper)
log = logging.getLogger("imdb_exp")


def use_backend(name: str):
    """Keras with the chosen backend; Keras reads KERAS_BACKEND once, at its first import."""
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info and warnings, where it is read
    # Parallel sweep jobs share a GPU: each takes memory as it needs it instead of the whole card.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
        with quiet.start_up_notices_dropped():
            import keras

            # Imported on every backend: Keras's set_random_seed seeds TensorFlow too wherever it is
            # installed (it is a dependency), so its notices would otherwise come mid-run on JAX or torch.
            import tensorflow as tf

            if name == "tensorflow":  # the CUDA probe, and its notices, happen at the first device query
                tf.config.list_physical_devices("GPU")
    except ImportError as err:
        raise schema.ConfigError(
            f"trainer.backend={name} cannot be loaded ({err}); install it, e.g. pip install 'imdb-exp[jax]'"
        ) from None
    if keras.backend.backend() != name:
        raise schema.ConfigError(
            f"trainer.backend={name}, but this process already runs Keras on {keras.backend.backend()}; "
            "sweep backends in separate processes"
        )
    return keras


def start_from_a_collected_heap(keras) -> None:
    """Collects what the previous job left (its model, its graphs), then freezes what survives.

    By now the process holds hundreds of thousands of long-lived objects (MLflow, Hydra, pandas,
    SQLAlchemy, TensorFlow), and every full collection walks them: 0.38 s a pass on the 2-core
    machine, 0.006 s with them frozen. Frozen, they are left out of the collections that training's
    allocations trigger and of the next job's, which walks only this job's objects.
    """
    keras.utils.clear_session()  # starts each sweep job from a clean graph, and collects
    gc.freeze()


def run_tags() -> dict[str, str]:
    """The group choices and overrides of this Hydra job, and its number when it is a sweep job."""
    job = HydraConfig.get()
    tags = {group: job.runtime.choices.get(group, "") for group in ("data", "model", "optimizer")}
    overrides = " ".join(o for o in job.overrides.task if not schema.is_launch_only(o.split("=", 1)[0]))
    tags["overrides"] = redact(overrides)
    if job.mode == RunMode.MULTIRUN:
        tags[sweep.JOB_TAG] = str(job.job.num)
    return tags


def train(cfg: DictConfig, tags: dict[str, str], interrupts: Interrupts | None = None, run_id: str | None = None):
    """One experiment, or run ``run_id`` continued from its last checkpoint.

    Returns the validation accuracy of the model the run ends with (what sweeps rank by), None
    without a validation split (the test set is never a return value), or search.Pruned when an
    Optuna trial's pruner stopped it.
    """
    interrupts = interrupts or Interrupts()  # signals not handled: nothing to defer
    settings = schema.validate(cfg)
    keras = use_backend(settings.trainer.backend)
    # Imported only now: these modules import Keras, which must see the backend chosen above.
    from imdb_exp import checkpoints, data, evaluation, fitting, models, plots, shared_checkpoints, tracking
    from imdb_exp.guards import InterruptAtBatchEnd, StopOnNonFiniteLoss

    trainer = settings.trainer
    models.warn_if_slow(settings.model, trainer.backend)
    run_name = f"{tags.get('model', settings.model.family)}-{tags.get('optimizer', settings.optimizer.name)}"
    tags = tags | {"config_hash": resume.config_hash(cfg)} | tracking.provenance(trainer.backend)
    trial = search.TrialReporter(settings.trial) if settings.trial.study else None
    if trial:
        tags |= {"optuna.study": settings.trial.study, "optuna.trial": str(settings.trial.number)}
    continuing = run_id is not None
    tracked = tracking.tracked_run(settings.tracking, run_name, tags, run_id)
    with tracked as open_run, checkpoints.held(open_run.run.info.run_id):
        run = open_run.run
        run_id = run.info.run_id
        checkpoint = shared_checkpoints.RunCheckpoint(run_id, settings.tracking.uri)
        log.info(
            "run %s: %s, %s backend, %d epochs of batch %d, seed %d",
            run_name,
            tags.get("overrides") or "the defaults",
            trainer.backend,
            trainer.epochs,
            trainer.batch_size,
            trainer.seed,
        )
        tracking.log_config(cfg, run)
        started = time.perf_counter()
        dataset = data.load_dataset(settings.data)
        data_prep_seconds = time.perf_counter() - started
        tracking.log_datasets(dataset, settings.data)

        started = time.perf_counter()
        with recorder.model_seeding:  # the background thread loads no model meanwhile
            start_from_a_collected_heap(keras)
            keras.utils.set_random_seed(trainer.seed)
            keras.config.set_dtype_policy("mixed_bfloat16" if trainer.mixed_precision else "float32")
            model = models.build(settings.model, settings.data)  # the whole model: what is logged and served
            trained, dataset = models.prepare(model, dataset)  # what fits, and the inputs it fits on
            models.compile_model(trained, settings.model, settings.optimizer)
        prepare_seconds = time.perf_counter() - started
        tracking.log_model_summary(model)
        progress = checkpoint.restore(trained) if continuing else None
        if continuing and progress is None and tracking.epochs_logged(run_id):
            checkpoint.discard()  # damaged: never to be tried again
            raise resume.StartOver(run_id)
        if progress:
            log.info("continuing run %s after epoch %d", run_id, progress.epochs_done)
            tracking.log_missing_epochs(run_id, progress)

        def after_epoch(progress: checkpoints.Progress) -> None:
            if trainer.checkpoint:  # first: a kill in between leaves a step to backfill
                checkpoint.save(trained, progress)
            tracking.log_epoch(progress)
            if trial:
                trial.report(progress.epochs_done, progress.history)  # raises TrialPruned when hopeless

        guards = [StopOnNonFiniteLoss(), InterruptAtBatchEnd(interrupts)]
        verbose = 1 if sys.stdout.isatty() else 2  # a progress bar on terminals, a line per epoch in logs
        progress = progress or checkpoints.Progress()
        try:
            with interrupts.deferred(), recorder.while_training():  # the previous job's records meanwhile
                fitting.fit(trained, dataset, trainer, progress, guards, after_epoch, verbose)
        except search.TrialPruned as pruned:  # not a failure: the search learned what it needed
            tracking.log_pruned(pruned.epoch)
            tracking.log_metrics({"epochs_trained": progress.epochs_done, "fit_seconds": progress.fit_seconds})
            checkpoint.discard()
            return search.Pruned(pruned.epoch)

        tracking.log_missing_epochs(run_id, progress)  # epochs a server that did not answer dropped
        labels = dataset.test.y
        with interrupts.deferred():
            probabilities = trained.predict(
                dataset.test.x, batch_size=trainer.batch_size, callbacks=guards[1:], verbose=0
            ).ravel()
        test_loss = float(
            keras.ops.mean(keras.losses.get(settings.model.loss)(labels[:, None], probabilities[:, None]))
        )
        metrics = evaluation.test_metrics(labels, probabilities)
        final = fitting.final_val_metrics(progress, trainer.patience)
        tracking.log_metrics(
            metrics
            | final
            | {"test_loss": test_loss, "data_prep_seconds": data_prep_seconds, "prepare_seconds": prepare_seconds}
            | {"fit_seconds": progress.fit_seconds}
            | {"epochs_trained": progress.epochs_done}
            | ({"best_epoch": progress.best_epoch} if progress.best_epoch else {})
        )
        log.info(
            "test_accuracy=%.4f test_auc=%.4f test_loss=%.4f data_prep_seconds=%.2f fit_seconds=%.1f epochs=%d",
            metrics["test_accuracy"],
            metrics["test_auc"],
            test_loss,
            data_prep_seconds,
            progress.fit_seconds,
            progress.epochs_done,
        )

        corpus = dataset.corpus  # the records need no more of the dataset, which may be large
        vocabulary = corpus.vocabulary_tsv if corpus else None  # the keras source has none
        if vocabulary and settings.tracking.log_model:
            served = tracking.save_classifier(model, vocabulary)

        def records() -> None:
            """The run's figures, reports and servable model; then nothing is left to continue."""
            history = progress.history
            figures = {
                "curves/loss.png": plots.learning_curve(history, "loss"),
                "curves/accuracy.png": plots.learning_curve(history, "accuracy"),
                "evaluation/probabilities.png": plots.probability_distribution(labels, probabilities),
                "evaluation/confusion_matrix.png": plots.confusion_matrix(
                    evaluation.confusion_matrix(labels, probabilities)
                ),
                "evaluation/roc_curve.png": plots.roc_curve(evaluation.roc_curve(labels, probabilities)),
            }
            for path, figure in figures.items():
                tracking.log_figure(figure, path)
            if vocabulary:
                count = settings.tracking.misclassified_reviews
                report = evaluation.misclassified_report(corpus.test, corpus.decode, probabilities, count)
                tracking.log_text(report, "evaluation/misclassified.md")
                tracking.log_text(vocabulary, "vocabulary.tsv")
                if settings.tracking.log_model:
                    tracking.log_classifier(served, settings)
            checkpoint.discard()  # the run is complete; its logged model is what lasts

        # Written on the background thread while a sweep launched from this process goes on to its next
        # job; a run of its own, or a job of a launcher's worker process, waits for them here.
        open_run.records = records
    if not sweep.launched_here():
        recorder.wait()
        open_run.written.result()  # a run of its own fails if its records could not be written
    log.info(store.where_to_see(store.resolve_uri(settings.tracking.uri), run.info.experiment_id, run_id))
    return final.get(sweep.OBJECTIVE)


def run_job(cfg: DictConfig, tags: dict[str, str], interrupts: Interrupts) -> float | None:
    """resume=RUN_ID continues that run; a sweep job whose exact config already FINISHED in the store
    is counted as done, and one that was cut off is continued from its checkpoint (unless retrain)."""
    schema.validate(cfg)  # a value out of range is reported before the store is searched
    if cfg.resume:
        cfg, tags, run_id = resume.recorded_config(cfg, list(HydraConfig.get().overrides.task)), {}, cfg.resume
    elif cfg.tracking.parent_run_id and not cfg.retrain and (earlier := resume.earlier_run(cfg)):
        if earlier.finished:
            return sweep.count_done_job(cfg, tags, earlier.run)
        run_id = earlier.run.info.run_id
    else:
        return train(cfg, tags, interrupts)
    try:
        return train(cfg, tags, interrupts, run_id=run_id)
    except resume.StartOver as cut:  # its history stays as it was, in the run that ended FAILED
        log.warning("run %s cannot continue (%s); training the same config as a new run", run_id, cut)
        return train(cfg, tags | {resume.STARTED_OVER_TAG: run_id}, interrupts)


@hydra.main(config_path="pkg://imdb_exp.conf", config_name="config", version_base="1.3")
def job(cfg: DictConfig) -> float | None:
    redact_log_records()  # also here: a launcher's worker process runs this function, not main()
    tags = run_tags()
    sweeping = sweep.JOB_TAG in tags
    interrupts = Interrupts()
    try:
        with interrupts.handled():
            return run_job(cfg, tags, interrupts)
    except KeyboardInterrupt as err:
        signum = signal_of(err)
        print(f"imdb-exp: stopped by {signum.name}; the MLflow run is marked KILLED", file=sys.stderr)
        interrupts.pass_on(signum)  # a scheduler's own handler (submitit's requeue on preemption) acts now
        sys.exit(128 + signum)
    except Exception as err:
        if isinstance(err, schema.UserError):
            print(f"imdb-exp: error: {err}", file=sys.stderr)
        if not sweeping:
            if isinstance(err, schema.UserError):
                sys.exit(2)
            raise  # a bug, outside a sweep: its traceback is what helps
        if not isinstance(err, schema.UserError):
            log.exception("sweep job failed")
        # The other jobs go on; the sweep's end reports the failures and exits non-zero.
        sweep.record_unstarted_job(cfg, tags, err)
    finally:
        if sweeping:  # wherever the job ran, its log goes with its run (the traceback of a failure too)
            sweep.attach_job_log(cfg, tags)
    return None


def main() -> None:
    """The imdb-exp command. Hydra runs `job` once, or once per sweep job; however the command ends
    (a job's signal, Hydra's error for a later job's config, a launcher's failure), a sweep's parent
    run ends with it, KILLED or FAILED, with the table of the jobs so far."""
    if sys.argv[1:] == ["--version"]:
        print(f"imdb-exp {version('imdb-exp')}")
        return
    redact_log_records()
    with Interrupts().handled():
        try:
            job()
        except BaseException as err:
            sweep.end_unfinished(err)
            if isinstance(err, Interrupted):  # between jobs, or before the first one started
                print(f"imdb-exp: stopped by {err.signal.name}", file=sys.stderr)
                sys.exit(128 + err.signal)
            raise
