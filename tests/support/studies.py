"""Optuna studies for the search tests, and the search command they run."""

import optuna

from imdb_exp.sweeps import study_storage
from tests.support.presets import DEBUG

SEARCH = [
    "-m",
    "hparams_search=dense",
    "hydra.sweeper.n_trials=2",
    "trainer.epochs=2",
    *DEBUG,
    "tracking.log_model=false",
]


def study_in(tmp_path, **kwargs) -> optuna.Study:
    storage = study_storage.open_storage(str(tmp_path / "journal.log"))
    return optuna.create_study(study_name="s", storage=storage, direction="maximize", **kwargs)
