"""The imdb-exp command: compose the config, then data -> model -> fit -> evaluate -> track.

This is the one module that knows all the others; the behaviour lives in conf/ and in them.
"""

import logging
import os
import sys
import time

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from imdb_exp import schema

schema.register()
log = logging.getLogger("imdb_exp")


def use_backend(name: str):
    """Keras with the chosen backend; Keras reads KERAS_BACKEND once, at its first import."""
    os.environ["KERAS_BACKEND"] = name
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
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


def train(cfg: DictConfig, choices: dict[str, str]) -> float:
    """One experiment; returns the best validation accuracy (test accuracy without validation)."""
    settings = schema.validate(cfg)
    keras = use_backend(settings.trainer.backend)
    # Imported only now: these modules import Keras, which must see the backend chosen above.
    from imdb_exp import data, models, plots, tracking
    from imdb_exp.batches import Batches

    family = models.check_pairing(settings.model, settings.data)
    trainer = settings.trainer
    keras.utils.clear_session()  # sweep jobs share the process; start each from a clean graph
    keras.utils.set_random_seed(trainer.seed)
    tags = {group: choices.get(group, "") for group in ("data", "model", "optimizer")}
    with tracking.tracked_run(settings.tracking, f"{tags['model']}-{tags['optimizer']}", tags):
        tracking.log_config(cfg)
        started = time.perf_counter()
        dataset = data.load_dataset(settings.data, trainer.seed)
        data_prep_seconds = time.perf_counter() - started

        model = models.compile_model(family.build(settings.model, settings.data), settings.model, settings.optimizer)
        tracking.log_model_summary(model)
        started = time.perf_counter()
        history = model.fit(
            Batches(dataset.train, trainer.batch_size, shuffle_seed=trainer.seed),
            validation_data=Batches(dataset.val, trainer.batch_size) if dataset.val else None,
            epochs=trainer.epochs,
            callbacks=[tracking.EpochMetrics()],
            verbose=1 if sys.stdout.isatty() else 2,  # a progress bar on terminals, a line per epoch in logs
        ).history
        fit_seconds = time.perf_counter() - started
        test_loss, test_accuracy = model.evaluate(Batches(dataset.test, trainer.batch_size), verbose=0)

        tracking.log_metrics(
            {
                "test_loss": test_loss,
                "test_accuracy": test_accuracy,
                "data_prep_seconds": data_prep_seconds,
                "fit_seconds": fit_seconds,
            }
        )
        for metric in ("loss", "accuracy"):
            tracking.log_figure(plots.learning_curve(history, metric), f"curves/{metric}.png")
        log.info(
            "test_accuracy=%.4f test_loss=%.4f data_prep_seconds=%.2f fit_seconds=%.1f",
            test_accuracy,
            test_loss,
            data_prep_seconds,
            fit_seconds,
        )
    return max(history.get("val_accuracy", [test_accuracy]))


@hydra.main(config_path="pkg://imdb_exp.conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    try:
        return train(cfg, HydraConfig.get().runtime.choices)
    except schema.UserError as err:
        print(f"imdb-exp: error: {err}", file=sys.stderr)
        sys.exit(2)
