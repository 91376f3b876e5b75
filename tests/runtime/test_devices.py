"""Each worker process of a parallel sweep claims one GPU of those visible and hides the others."""

import os
import subprocess
import sys

from imdb_exp.runtime import devices

# A worker: claims a device for its job, says which and what it now sees, then lives until told to end.
WORKER = """
import os, sys
from pathlib import Path
from imdb_exp.runtime import devices
device = devices.one_per_process(Path(sys.argv[1]), int(sys.argv[2]))
print(device, os.environ.get("CUDA_VISIBLE_DEVICES"), devices.one_per_process(Path(sys.argv[1]), 99), flush=True)
sys.stdin.read()
"""


def start_worker(claims, job_number: int, visible: str) -> subprocess.Popen:
    env = os.environ | {"CUDA_VISIBLE_DEVICES": visible}
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(claims), str(job_number)],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_live_workers_hold_distinct_devices_and_a_worker_beyond_them_shares_by_its_job_number(tmp_path):
    workers = []
    try:
        seen = []
        for job_number in (4, 7, 3):  # job numbers do not decide while a device is free
            workers.append(start_worker(tmp_path, job_number, "2,5"))
            seen.append(workers[-1].stdout.readline().split())
        # Each sees only its own; a later job in the same process keeps it (its backend is loaded).
        assert seen[:2] == [["2", "2", "2"], ["5", "5", "5"]]
        assert seen[2] == ["5", "5", "5"]  # both held: job 3 shares device 3 mod 2 -> the second
    finally:
        ended = [worker.communicate("") for worker in workers]
    assert "more parallel jobs than devices (2): job 3 shares device 5" in ended[2][1]

    after = start_worker(tmp_path, 0, "2,5")  # the workers ended: their claims went with them
    assert after.communicate("")[0].split() == ["2", "2", "2"]


def test_one_visible_device_or_none_is_left_as_the_launcher_set_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert devices.one_per_process(tmp_path, 0) is None and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert devices.visible_devices() == []


def test_a_list_that_names_no_device_cuda_knows_is_left_as_it_is_with_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(devices, "_claimed", None)  # this process has claimed nothing yet
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,banana")
    assert devices.one_per_process(tmp_path, 0) is None and os.environ["CUDA_VISIBLE_DEVICES"] == "0,banana"
    assert devices.one_per_process(tmp_path, 1) is None  # the worker's next job
    assert caplog.text.count("CUDA_VISIBLE_DEVICES=0,banana: banana names no device") == 1
    assert not list(tmp_path.iterdir())  # no device claimed
