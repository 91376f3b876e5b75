"""Runs that learn from text without labels, through the commands: the combined family's logged model
answers raw text, and a run that saw the test reviews' text is tagged, says so, and is warned about
wherever it is put beside one that did not."""

import pytest

from imdb_exp.tracking import record
from tests.support.commands import run_cli
from tests.support.presets import DEBUG
from tests.support.store import recorded_runs

COMBINED = [
    "model=nbsvm_docvec",
    *DEBUG,
    "trainer.epochs=5",
    "data.val_holdout=reviews",
    "model.features=3000",
    "model.dim=16",
]


@pytest.mark.slow
@pytest.mark.e2e
def test_a_transductive_run_is_tagged_said_and_warned_about_beside_one_that_is_not(tmp_path, archive, isolated_home):
    plain = run_cli(*COMBINED, f"data.archive={archive}", cwd=tmp_path)
    seen = run_cli(*COMBINED, f"data.archive={archive}", "data.unlabeled=[test]", cwd=tmp_path)
    assert plain.returncode == 0 and seen.returncode == 0, (plain.stderr[-3000:], seen.stderr[-3000:])
    assert "transductive run: data.unlabeled has the test reviews' text" in seen.stdout
    assert "transductive run" not in plain.stdout + plain.stderr, [
        line for line in (plain.stdout + plain.stderr).splitlines() if "transductive" in line
    ]
    client, runs = recorded_runs(isolated_home / "mlflow.db")
    assert [record.transductive(run) for run in runs] == [False, True]
    ids = [run.info.run_id for run in runs]

    served = run_cli(
        "--run-id",
        ids[1],
        "A great, wonderful and superb film!",
        "An awful, boring and terrible waste.",
        cwd=tmp_path,
        program="imdb-exp-predict",
    )
    assert served.returncode == 0, served.stderr[-3000:]
    assert [line.split()[0] for line in served.stdout.splitlines()[-2:]] == ["positive", "negative"]

    compared = run_cli(*ids, cwd=tmp_path, program="imdb-exp-compare")
    assert compared.returncode == 0, compared.stderr[-3000:]
    assert f"imdb-exp-compare: warning: {ids[1]} (" in compared.stderr
    assert "learned from the test reviews' text (transductive) and the others did not" in compared.stderr

    made = run_cli(*ids, cwd=tmp_path, program="imdb-exp-ensemble")
    assert made.returncode == 0, made.stderr[-3000:]
    assert "imdb-exp-ensemble: warning: run " in made.stderr and "the ensemble is tagged transductive" in made.stderr
    ensemble = recorded_runs(isolated_home / "mlflow.db")[1][-1]
    assert ensemble.data.tags[record.MODEL] == "ensemble" and record.transductive(ensemble)
