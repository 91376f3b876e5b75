"""The imdb-exp-predict command in a subprocess."""

import pytest

from tests.support.commands import run_cli


@pytest.mark.e2e
def test_predict_command_refuses_empty_input_before_loading_a_model(tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n")
    result = run_cli("--model", "models:/none@candidate", "--file", str(tmp_path / "empty.txt"), cwd=tmp_path,
                     program="imdb-exp-predict")  # fmt: skip
    assert result.returncode == 2
    assert "no reviews: give them as arguments, with --file, or one per line on stdin" in result.stderr
