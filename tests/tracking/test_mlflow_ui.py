"""The MLflow UI as a person sees it: a real server on 127.0.0.1, headless Chromium, a screenshot.

Needs Debian's chromium and chromium-driver; skipped where they are missing, except under
.ci/run, which installs them and sets IMDB_EXP_REQUIRE_BROWSER=1 so that a missing browser fails.
"""

import os
import shutil
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from imdb_exp.tracking import record, store
from tests.support.commands import run_cli
from tests.support.presets import DEBUG
from tests.support.servers import mlflow_server
from tests.support.store import recorded_runs

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("IMDB_EXP_REQUIRE_BROWSER"):
    pytest.skip("chromium and chromium-driver are not installed", allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


@pytest.fixture
def ui_server(tmp_path, archive, isolated_home):
    """A store with one finished run and one finished 2-job sweep, served by `mlflow server`."""
    # Ten epochs: the run learns enough to show a test accuracy with several digits.
    assert run_cli(f"data.archive={archive}", *DEBUG, "trainer.epochs=10", cwd=tmp_path).returncode == 0
    assert run_cli("-m", "optimizer=rmsprop,adam", f"data.archive={archive}", *DEBUG, cwd=tmp_path).returncode == 0
    uri = f"sqlite:///{isolated_home / 'mlflow.db'}"
    with mlflow_server(uri, tmp_path) as url:
        yield url, MlflowClient(uri)


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for_text(driver, *texts: str, timeout: float = 60) -> None:
    WebDriverWait(driver, timeout).until(lambda d: all(t in d.find_element(By.TAG_NAME, "body").text for t in texts))


def test_ui_shows_the_experiment_runs_metrics_and_learning_curve(ui_server, browser, tmp_path):
    url, client = ui_server
    experiment = client.get_experiment_by_name("imdb-exp")
    _, runs = recorded_runs(client.tracking_uri)
    single = runs[0]
    parent = next(r for r in runs if record.SWEEP in r.data.tags)

    browser.get(f"{url}/#/experiments/{experiment.experiment_id}/runs")  # the "Training runs" tab
    wait_for_text(browser, "imdb-exp", single.info.run_name, parent.info.run_name[:20])

    # The run's page as the run's last line names it: the Model training view, with the run's datasets.
    browser.get(f"{url}/{store.run_page(experiment.experiment_id, single.info.run_id)}")
    wait_for_text(browser, "test_accuracy", f"{single.data.metrics['test_accuracy']:.4f}"[:5], "imdb-training")
    assert "workflowType=machine_learning" in browser.current_url

    # The runs table of that view: its Dataset column names each run's training data.
    browser.get(f"{url}/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning")
    wait_for_text(browser, "Dataset", "imdb-training", single.info.run_name)
    screenshots = Path(os.environ.get("IMDB_EXP_SCREENSHOTS") or tmp_path)
    screenshots.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(screenshots / "mlflow-ui-runs-with-datasets.png"))

    browser.get(
        f"{url}/#/experiments/{experiment.experiment_id}/runs/{single.info.run_id}/artifactPath/curves/loss.png"
    )

    wait_for_text(browser, record.LOSS_CURVE)

    def curve_image_shown(driver) -> bool:
        # The UI fetches the PNG and shows it from a blob: URL; our curves are 600 px wide (6 in at 100 dpi).
        return driver.execute_script("return [...document.images].some(i => i.complete && i.naturalWidth === 600)")

    WebDriverWait(browser, 60).until(curve_image_shown)
    assert browser.save_screenshot(str(screenshots / "mlflow-ui-run-learning-curve.png"))
