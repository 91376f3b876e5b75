"""Callbacks a user adds from the command line."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from imdb_exp.tracking import record
from tests.support.commands import run_cli
from tests.support.presets import DEBUG
from tests.support.store import recorded_runs, steps


@pytest.mark.slow
@pytest.mark.e2e
def test_a_callback_added_from_the_command_line_records_tensorboard_logs_into_the_run(tmp_path, archive, isolated_home):
    result = run_cli("callbacks=[default,tensorboard]", f"data.archive={archive}", *DEBUG, "trainer.epochs=2",
                     "tracking.log_model=false", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    client, (run,) = recorded_runs(isolated_home / "mlflow.db")
    config = OmegaConf.load(client.download_artifacts(run.info.run_id, record.CONFIG, str(tmp_path)))
    assert list(config.callbacks) == ["stop_on_non_finite_loss", "tensorboard"]  # by name, no module path
    local = client.download_artifacts(run.info.run_id, record.TENSORBOARD, str(tmp_path))
    event_files = list(Path(local).rglob("events.out.tfevents.*"))
    assert {path.parent.name for path in event_files} >= {"train", "validation"}
    assert steps(client, run.info.run_id, "loss") == [1, 2]  # the fit itself as without it
