"""A run's last completed epoch on disk, so that a run cut off at any point continues exactly.

IMDB_EXP_HOME/checkpoints/RUN_ID.npz (checked_npz) holds every variable of the model (weights and
the dropout layers' random-generator state), of the optimizer (step count, moments) and the
loop's progress: epochs done, each epoch's metrics, the best epoch so far and its weights. It is
replaced at every epoch end and deleted when the run FINISHES.

Local, not an MLflow artifact: an artifact cannot be replaced atomically (a kill during the upload
would leave half a file as the only copy), and sending it to a tracking server every epoch would
put the network on every epoch's path. A run resumes where its IMDB_EXP_HOME is; point that at a
shared file system for jobs that may continue on another machine.

RUN_ID.lock is held (flock) while a process trains the run. The kernel lets go of it when that
process ends, however it ends: a RUNNING run whose lock is free was left behind by a SIGKILL, an
out-of-memory kill or a lost machine, and may be resumed.
"""

import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from imdb_exp.errors import UserError
from imdb_exp.runtime import checked_npz, file_locks
from imdb_exp.runtime.paths import home

FORMAT = 1


class CheckpointError(UserError):
    pass


@dataclass
class Progress:
    """Where the training loop stands, besides the variables."""

    epochs_done: int = 0
    history: dict[str, list[float]] = field(default_factory=dict)  # metric -> its value after each epoch
    best_epoch: int = 0  # the epoch of the lowest validation loss so far (from 1); 0 = none yet
    fit_seconds: float = 0.0  # training time, summed over every process that trained the run
    best_weights: list[np.ndarray] | None = None  # the best epoch's weights, kept for early stopping
    # torch's generator states at the checkpoint, restored as the next fit starts (fitting.py)
    torch_generators: dict[str, np.ndarray] | None = None

    def to_json(self) -> str:
        arrays = ("best_weights", "torch_generators")
        return json.dumps({k: v for k, v in asdict(self).items() if k not in arrays})


def directory() -> Path:
    return home() / "checkpoints"


def path(run_id: str) -> Path:
    return directory() / f"{run_id}.npz"


def save(run_id: str, model, progress: Progress) -> None:
    arrays = {"progress": checked_npz.text_array(progress.to_json())}
    arrays |= {f"model.{i}": v.numpy() for i, v in enumerate(model.variables)}
    arrays |= {f"optimizer.{i}": v.numpy() for i, v in enumerate(model.optimizer.variables)}
    arrays |= {f"best.{i}": w for i, w in enumerate(progress.best_weights or [])}
    arrays |= _torch_generator_states()
    checked_npz.write(path(run_id), arrays, FORMAT)


def _torch_generator_states() -> dict[str, np.ndarray]:
    """Keras on PyTorch draws the masks of dropout layers without a seed from torch's own generators,
    not from the layers' seed variables: on that backend their states are part of where training
    stands. (Only there is torch sure to be imported already.)"""
    torch = sys.modules.get("torch")
    if torch is None or os.environ.get("KERAS_BACKEND") != "torch":
        return {}
    states = {"torch_rng.cpu": torch.get_rng_state().numpy()}
    if torch.cuda.is_available():
        states |= {f"torch_rng.cuda{i}": state.numpy() for i, state in enumerate(torch.cuda.get_rng_state_all())}
    return states


def restore(run_id: str, model) -> Progress | None:
    """Sets the model's and optimizer's variables from the run's checkpoint; None if it has none."""
    arrays = checked_npz.read(path(run_id), FORMAT, instead="the run cannot continue from it")
    if arrays is None:
        return None
    model.optimizer.build(model.trainable_variables)  # its moments exist only once built
    for prefix, variables in (("model", model.variables), ("optimizer", model.optimizer.variables)):
        stored = [arrays[f"{prefix}.{i}"] for i in range(sum(name.startswith(f"{prefix}.") for name in arrays))]
        if [s.shape for s in stored] != [tuple(v.shape) for v in variables]:
            raise CheckpointError(
                f"the checkpoint of run {run_id} does not fit this {prefix}; it was made by other code"
            )
        for variable, value in zip(variables, stored, strict=True):
            variable.assign(value)
    best = [arrays[name] for name in sorted((n for n in arrays if n.startswith("best.")), key=_index)]
    torch_generators = {name: arrays[name] for name in arrays if name.startswith("torch_rng.")}
    progress = json.loads(checked_npz.array_text(arrays["progress"]))
    return Progress(**progress, best_weights=best or None, torch_generators=torch_generators or None)


def set_torch_generators(states: dict[str, np.ndarray]) -> None:
    torch = sys.modules["torch"]
    torch.set_rng_state(torch.from_numpy(states["torch_rng.cpu"]))
    cuda = [torch.from_numpy(states[name]) for name in sorted(n for n in states if n.startswith("torch_rng.cuda"))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def discard(run_id: str) -> None:
    """Once the run FINISHED: nothing is left to continue."""
    path(run_id).unlink(missing_ok=True)
    _lock_path(run_id).unlink(missing_ok=True)


def _index(name: str) -> int:
    return int(name.rsplit(".", 1)[1])


def hold(run_id: str) -> Callable[[], None]:
    """Takes the run's lock: this process trains ``run_id`` until the returned function lets go of it;
    CheckpointError if another live process holds it."""
    directory().mkdir(parents=True, exist_ok=True)
    fd = file_locks.hold(_lock_path(run_id))
    if fd is None:
        raise CheckpointError(f"run {run_id} is being trained by another live process")

    def let_go() -> None:
        if not path(run_id).exists():  # the run ended with nothing to continue from: no file left behind
            _lock_path(run_id).unlink(missing_ok=True)
        os.close(fd)

    return let_go


def is_live(run_id: str) -> bool:
    """Whether a process holds the run's lock right now."""
    return file_locks.is_held(_lock_path(run_id))


def was_abandoned(run_id: str) -> bool:
    """Whether a process held the run's lock and died without ending the run: its lock file is left,
    and nobody holds it. A run of another machine has no lock file here, unless IMDB_EXP_HOME is
    shared, where this holds as far as the file system's locks reach across machines."""
    return _lock_path(run_id).exists() and not is_live(run_id)


def _lock_path(run_id: str) -> Path:
    return directory() / f"{run_id}.lock"
