"""The imdb-exp command: compose the config, then data -> model -> fit -> evaluate -> track.

This is the one module that knows all the others; the behaviour lives in conf/ and in them.
"""

import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from imdb_exp import schema
from imdb_exp.interrupts import Interrupted, Interrupts
from imdb_exp.sweep import PARENT_ENV

schema.register()
log = logging.getLogger("imdb_exp")


def use_backend(name: str):
    """Keras with the chosen backend; Keras reads KERAS_BACKEND once, at its first import."""
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    # Parallel sweep jobs share a GPU: each takes memory as it needs it instead of the whole card.
    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
        import keras
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


@contextmanager
def heap_frozen() -> Iterator[None]:
    """The garbage collector leaves the objects that exist on entry alone until the exit.

    By fit time this process holds some 600,000 objects (MLflow, Hydra, pandas, SQLAlchemy), and
    every full collection that training's allocations trigger walks all of them: 0.4 s a pass on
    these 2 cores, a cost a plain Keras script does not pay. Unfrozen after, so that a sweep's
    earlier models can still be collected.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_tags() -> dict[str, str]:
    """The group choices and overrides of this Hydra job, and its sweep's parent run if any."""
    job = HydraConfig.get()
    tags = {group: job.runtime.choices.get(group, "") for group in ("data", "model", "optimizer")}
    tags["overrides"] = " ".join(job.overrides.task)
    if parent := os.environ.get(PARENT_ENV):
        tags["mlflow.parentRunId"] = parent
    return tags


def train(cfg: DictConfig, tags: dict[str, str], interrupts: Interrupts | None = None) -> float:
    """One experiment; returns the best validation accuracy (test accuracy without validation)."""
    interrupts = interrupts or Interrupts()  # signals not handled: nothing to defer
    settings = schema.validate(cfg)
    keras = use_backend(settings.trainer.backend)
    # Imported only now: these modules import Keras, which must see the backend chosen above.
    from imdb_exp import data, evaluation, models, plots, tracking
    from imdb_exp.guards import InterruptAtBatchEnd, StopOnNonFiniteLoss

    family = models.check_pairing(settings.model, settings.data)
    trainer = settings.trainer
    keras.utils.clear_session()  # sweep jobs share the process; start each from a clean graph
    keras.utils.set_random_seed(trainer.seed)
    keras.config.set_dtype_policy("mixed_bfloat16" if trainer.mixed_precision else "float32")
    models.warn_if_slow(settings.model, trainer.backend)
    run_name = f"{tags.get('model', settings.model.family)}-{tags.get('optimizer', settings.optimizer.name)}"
    with tracking.tracked_run(settings.tracking, run_name, tags):
        tracking.log_config(cfg)
        started = time.perf_counter()
        dataset = data.load_dataset(settings.data, trainer.seed)
        data_prep_seconds = time.perf_counter() - started

        model = models.compile_model(family.build(settings.model, settings.data), settings.model, settings.optimizer)
        models.adapt(model, dataset.train.x)
        tracking.log_model_summary(model)
        started = time.perf_counter()
        stop_on_signal = InterruptAtBatchEnd(interrupts)
        with interrupts.deferred(), heap_frozen():
            history = model.fit(
                dataset.train.x,
                dataset.train.y,
                batch_size=trainer.batch_size,
                validation_data=(dataset.val.x, dataset.val.y) if dataset.val else None,
                epochs=trainer.epochs,
                callbacks=[tracking.EpochMetrics(), StopOnNonFiniteLoss(), stop_on_signal],
                verbose=1 if sys.stdout.isatty() else 2,  # a progress bar on terminals, a line per epoch in logs
            ).history
        fit_seconds = time.perf_counter() - started

        labels = dataset.test.y
        with interrupts.deferred(), heap_frozen():
            probabilities = model.predict(
                dataset.test.x, batch_size=trainer.batch_size, callbacks=[stop_on_signal], verbose=0
            ).ravel()
        test_loss = float(
            keras.ops.mean(keras.losses.get(settings.model.loss)(labels[:, None], probabilities[:, None]))
        )
        metrics = evaluation.test_metrics(labels, probabilities)
        tracking.log_metrics(
            metrics | {"test_loss": test_loss, "data_prep_seconds": data_prep_seconds, "fit_seconds": fit_seconds}
        )
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
        if dataset.corpus:  # the keras source has no vocabulary to decode or serve with
            corpus, count = dataset.corpus, settings.tracking.misclassified_reviews
            report = evaluation.misclassified_report(corpus.test, corpus.decode, probabilities, count)
            tracking.log_text(report, "evaluation/misclassified.md")
            vocabulary = corpus.vocabulary_tsv()
            tracking.log_text(vocabulary, "vocabulary.tsv")
            if settings.tracking.log_model:
                tracking.log_classifier(model, vocabulary, settings)
        log.info(
            "test_accuracy=%.4f test_auc=%.4f test_loss=%.4f data_prep_seconds=%.2f fit_seconds=%.1f",
            metrics["test_accuracy"],
            metrics["test_auc"],
            test_loss,
            data_prep_seconds,
            fit_seconds,
        )
    return max(history.get("val_accuracy", [metrics["test_accuracy"]]))


@hydra.main(config_path="pkg://imdb_exp.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    sweeping = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        with Interrupts().handled() as interrupts:
            return train(cfg, run_tags(), interrupts)
    except KeyboardInterrupt as err:
        signum = err.signal if isinstance(err, Interrupted) else signal.SIGINT
        print(f"imdb-exp: stopped by {signum.name}; the MLflow run is marked KILLED", file=sys.stderr)
        sys.exit(128 + signum)
    except schema.UserError as err:
        print(f"imdb-exp: error: {err}", file=sys.stderr)
        if not sweeping:
            sys.exit(2)
    except Exception:
        if not sweeping:
            raise  # a bug, outside a sweep: its traceback is what helps
        log.exception("sweep job failed")
    # Only a failed sweep job gets here. It is recorded FAILED in MLflow and the other jobs go on;
    # the sweep's end (sweep.SweepParentRun) reports the failures and exits non-zero.
    return None
