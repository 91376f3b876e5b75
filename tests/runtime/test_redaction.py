"""Credentials in any URL of a text are redacted before it is shown or recorded."""

import pytest

from imdb_exp.runtime.redaction import redact


@pytest.mark.parametrize(
    "text, shown",
    [
        ("postgresql://bob:secret@db:5432/optuna", "postgresql://***@db:5432/optuna"),
        ("postgresql+psycopg://bob@db/optuna", "postgresql+psycopg://***@db/optuna"),
        (r"trial.storage=postgresql\://bob\:secret@db\:5432/x", r"trial.storage=postgresql\://***@db\:5432/x"),
        ("http://mlflow:5000/#/runs/a@b", "http://mlflow:5000/#/runs/a@b"),  # an @ past the host is no credential
        ("sqlite:////home/bob/mlflow.db", "sqlite:////home/bob/mlflow.db"),
    ],
)
def test_credentials_in_any_url_of_a_text_are_redacted(text, shown):
    assert redact(text) == shown
