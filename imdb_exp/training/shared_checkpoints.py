"""A run's checkpoint where every machine that reaches its tracking server reaches it.

With a tracking server (an http or https tracking URI), each epoch's checkpoint file
(checkpoints.py, still written to the local disk first) is also uploaded as an artifact of the run,
into one of two slots, `checkpoint/a.npz` (even epochs) and `checkpoint/b.npz` (odd); only once the upload
is whole does the run's tag `imdb_exp.checkpoint` name that slot and its epoch. A reader follows the
tag, so it sees the last whole checkpoint or none: a process killed mid-upload leaves the other
slot, which the tag still names. The file's own checksum (checked_npz) guards the download.

Why artifacts and not MLflow 3's per-epoch logged models: a logged model per epoch is a registry
entity with its own metadata, kept for ever, while continuing needs only the last epoch; two
slots keep a run's storage at two files whatever its length. When the run FINISHES, both slots and
the tag are deleted: what lasts is its logged model. A store on the local disk (SQLite) keeps only
the local file, as before.
"""

import logging
import os
import tempfile
from pathlib import Path

from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient

from imdb_exp.tracking import record, store
from imdb_exp.training import checkpoints
from imdb_exp.training.checkpoints import Progress

log = logging.getLogger(__name__)

SLOTS = ("a", "b")


def publish(client: MlflowClient, run_id: str, epoch: int) -> None:
    """Uploads the run's local checkpoint of ``epoch`` into that epoch's slot (odd and even epochs take
    turns, so the slot being written is never the one the tag names), then names it."""
    slot = SLOTS[epoch % 2]
    with tempfile.TemporaryDirectory(dir=checkpoints.directory()) as folder:
        upload = Path(folder) / f"{slot}.npz"
        os.link(checkpoints.path(run_id), upload)  # the artifact takes the file's name
        client.log_artifact(run_id, str(upload), record.CHECKPOINT_FOLDER)
    client.set_tag(run_id, record.CHECKPOINT, record.checkpoint_tag(slot, epoch))


def fetch(client: MlflowClient, run_id: str) -> bool:
    """Puts the server's checkpoint of the run in place of the local one (it is the newest: every
    machine that trained the run published there). False if the server has none."""
    named = record.checkpoint_slot(client.get_run(run_id))
    if named is None:
        return False
    target = checkpoints.path(run_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as folder:
        downloaded = client.download_artifacts(run_id, record.checkpoint_artifact(named[0]), folder)
        os.replace(downloaded, target)  # whole, or the local file as it was
    return True


def discard(client: MlflowClient, run_id: str) -> None:
    """Once the run FINISHED: its slots and tag go (a failure to delete them is only logged)."""
    run = client.get_run(run_id)
    if record.checkpoint_slot(run) is None:
        return
    try:
        get_artifact_repository(run.info.artifact_uri).delete_artifacts(record.CHECKPOINT_FOLDER)
        client.delete_tag(run_id, record.CHECKPOINT)
    except Exception as err:
        log.warning("the checkpoint of finished run %s stays on the server (%s)", run_id, err)


def exists(run) -> bool:
    """Whether the run has a checkpoint this machine can continue from: on its disk, or on the server."""
    return checkpoints.path(run.info.run_id).is_file() or record.checkpoint_slot(run) is not None


class RunCheckpoint:
    """A run's checkpoint as training uses it: the local file, and with a tracking server its copy there."""

    def __init__(self, run_id: str, tracking_uri: str | None):
        self.run_id = run_id
        uri = store.resolve_uri(tracking_uri)
        self.client = store.client(uri) if store.is_server(uri) else None

    def save(self, model, progress: Progress) -> None:
        checkpoints.save(self.run_id, model, progress)
        if self.client:
            publish(self.client, self.run_id, progress.epochs_done)

    def restore(self, model) -> Progress | None:
        if self.client:
            fetch(self.client, self.run_id)
        return checkpoints.restore(self.run_id, model)

    def discard(self) -> None:
        checkpoints.discard(self.run_id)
        if self.client:
            discard(self.client, self.run_id)
