"""A file the disk cannot take: one clear line, and no partial file left."""

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from imdb_exp.tracking import record
from imdb_exp.training import checkpoints
from tests.support.presets import DEBUG
from tests.support.store import recorded_runs


@pytest.mark.slow
@pytest.mark.e2e
def test_a_checkpoint_the_disk_cannot_take_fails_the_run_in_one_line_and_leaves_no_partial_file(
    tmp_path, archive, isolated_home
):
    # Writes past 4 MB fail as on a full disk (Python ignores SIGXFSZ, so the write reports EFBIG); a
    # 50,000-word multi-hot model's checkpoint is about 6 MB, the store and the cache far less.
    limit = 4 * 2**20
    command = [str(Path(sys.executable).with_name("imdb-exp")), f"data.archive={archive}", *DEBUG]
    command += ["data.num_words=50000", "tracking.log_model=false"]
    result = subprocess.run(
        command,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "imdb-exp: error: cannot write " in result.stderr and "File too large" in result.stderr
    assert "Traceback" not in result.stderr
    _, (run,) = recorded_runs(isolated_home / "mlflow.db")
    assert run.info.status == "FAILED" and run.data.tags[record.FAILURE_REASON].startswith("DiskError: cannot write")
    assert not list(checkpoints.directory().glob("*.npz")) and not list(checkpoints.directory().glob("*.tmp"))
