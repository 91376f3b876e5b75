"""One accelerator per process of a parallel sweep. A backend takes every GPU it sees (TensorFlow
reserves memory on all of them), so each worker process claims one device before its backend is
imported and hides the others (CUDA_VISIBLE_DEVICES). A launcher's worker runs many jobs, and only
its first import counts: the claim is the process's, held for its life, and names the lowest device
no other worker of the sweep holds (job k mod N when all are held, shared then)."""

import logging
import os
import shutil
import subprocess
from pathlib import Path

from imdb_exp.runtime import file_locks

log = logging.getLogger(__name__)

VISIBLE = "CUDA_VISIBLE_DEVICES"

_claimed: str | None = None  # this process's device, once claimed ("": none); its lock's descriptor stays open


def one_per_process(claims: Path, job_number: int) -> str | None:
    """The device this process runs on, claimed among those visible (a lock file per device under
    ``claims``, the sweep's folder) and made the only one visible; None when there is nothing to
    choose from (fewer than two devices: a launcher such as Ray or SLURM assigned one already)."""
    global _claimed
    if _claimed is None:
        visible = visible_devices()
        if len(visible) < 2:
            return None
        if unknown := [device for device in visible if not _names_a_device(device)]:
            _claimed = ""  # nothing claimed, said once for this process
            log.warning(
                "%s=%s: %s names no device (CUDA takes indices and GPU-/MIG- UUIDs, and reads the list only up "
                "to such an entry); left as it is, one device per job is off",
                VISIBLE,
                os.environ[VISIBLE],
                unknown[0],
            )
            return None
        _claimed = _claim(visible, claims, job_number)
        os.environ[VISIBLE] = _claimed
        log.info("this worker's jobs run on device %s of %s (%s)", _claimed, ",".join(visible), VISIBLE)
    return _claimed or None


def _names_a_device(device: str) -> bool:
    return device.isdigit() or device.startswith(("GPU-", "MIG-"))


def visible_devices() -> list[str]:
    """The CUDA devices this process may use: CUDA_VISIBLE_DEVICES when set, else every GPU the driver
    lists (none on a machine without one)."""
    if VISIBLE in os.environ:
        return [device.strip() for device in os.environ[VISIBLE].split(",") if device.strip()]
    if not shutil.which("nvidia-smi"):
        return []
    listed = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True, check=False).stdout
    return [str(index) for index, line in enumerate(listed.splitlines()) if line.startswith("GPU ")]


def _claim(visible: list[str], claims: Path, job_number: int) -> str:
    claims.mkdir(parents=True, exist_ok=True)
    for device in visible:
        if file_locks.hold(claims / f"device-{device}.lock") is not None:  # released when this process ends
            return device
    shared = visible[job_number % len(visible)]
    log.warning("more parallel jobs than devices (%d): job %d shares device %s", len(visible), job_number, shared)
    return shared
