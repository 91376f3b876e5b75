"""What code made a run: the commit of the checkout it ran from, and the versions."""

import subprocess

import keras

from imdb_exp.tracking import lineage, record


def test_the_commit_of_a_checkout_is_tagged_and_a_folder_outside_git_gets_no_commit(tmp_path):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    for command in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "a commit"]):
        subprocess.run(git + command, check=True)
    head = subprocess.run(git + ["rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    assert lineage.provenance("tensorflow", checkout)[record.GIT_COMMIT] == head
    outside = tmp_path / "outside"
    outside.mkdir()
    tags = lineage.provenance("tensorflow", outside)
    assert record.GIT_COMMIT not in tags and tags[record.KERAS_VERSION] == keras.__version__
