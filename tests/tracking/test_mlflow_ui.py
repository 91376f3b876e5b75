"""The MLflow UI as a person sees it, after a run, a 3-seed x 2-optimizer sweep and a search with pruned
trials: a real server on 127.0.0.1, headless Chromium, screenshots of what it shows.

Needs Debian's chromium and chromium-driver; skipped where they are missing, except under
.ci/run, which installs them and sets IMDB_EXP_REQUIRE_BROWSER=1 so that a missing browser fails.
"""

import os
import re
import shutil
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from imdb_exp.tracking import record, store
from tests.support.commands import run_cli
from tests.support.presets import DEBUG
from tests.support.servers import mlflow_server
from tests.support.store import recorded_runs

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER) and not os.environ.get("IMDB_EXP_REQUIRE_BROWSER"):
    pytest.skip("chromium and chromium-driver are not installed", allow_module_level=True)

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.xdist_group("mlflow_ui")]  # one store for both


@pytest.fixture(scope="module")
def ui_store(tmp_path_factory, archive):
    """A store with one finished run, a seed sweep and a search with pruned trials; the store's URI."""
    home = tmp_path_factory.mktemp("ui-home")
    cwd, env = home.parent, {"IMDB_EXP_HOME": str(home)}
    base = [f"data.archive={archive}", *DEBUG]
    for command in (
        [*base, "trainer.epochs=10"],  # ten epochs: a test accuracy with several digits
        ["-m", "trainer.seed=0,1,2", "optimizer=rmsprop,adam", "trainer.epochs=2", *base],
        # The first finished trial sets the median; a worse trial after it is pruned.
        ["-m", "hparams_search=dense", "hydra.sweeper.n_trials=6", "hydra.sweeper.pruner.n_startup_trials=1",
         "hydra.sweeper.sampler.seed=0", "trainer.epochs=4", *base],
    ):  # fmt: skip
        result = run_cli(*command, cwd=cwd, env=env)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]  # a job's traceback is logged
    return f"sqlite:///{home / 'mlflow.db'}"


@pytest.fixture
def ui_server(ui_store, tmp_path):
    with mlflow_server(ui_store, tmp_path) as url:
        yield url, MlflowClient(ui_store)


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


def sweeps_of(client: MlflowClient) -> dict[str, tuple]:
    """ "sweep" and "search": (parent, its job runs), the runs fetched whole."""
    _, runs = recorded_runs(client.tracking_uri)
    found = {}
    for parent in (r for r in runs if record.is_sweep(r)):
        jobs = [client.get_run(run_id) for run_id in record.counted_jobs(parent).values()]
        found[parent.info.run_name.split()[0]] = (parent, jobs)
    return found


def test_what_the_store_holds_reads_as_a_person_needs_it(ui_store):
    client = MlflowClient(ui_store)
    sweeps = sweeps_of(client)
    for parent, jobs in sweeps.values():
        names = [job.info.run_name for job in jobs]
        assert len(set(names)) == len(names) == 6  # every job told apart within its parent
        assert len(parent.info.run_name) < 60 and "/" not in parent.info.run_name  # no path in a parent's name
        assert all(f"[{name}](#/experiments/" in parent.data.tags[record.NOTE] for name in names)
    assert sweeps["sweep"][0].info.run_name == "sweep optimizer x seed, 6 jobs"
    groups: dict[str, list[str]] = {}
    for job in sweeps["sweep"][1]:
        groups.setdefault(job.data.tags[record.CONFIG_GROUP], []).append(job.info.run_name)
    assert sorted(map(len, groups.values())) == [3, 3]
    assert {label.split()[1] for label in groups} == {"rmsprop", "adam"}  # the optimizer, second word

    _, runs = recorded_runs(client.tracking_uri)
    for run in runs:
        params = run.data.params
        assert not {"backend", "encoding", "maxlen", "num_words", "trial.storage"} & set(params)
        assert not [key for key in params if "_target_" in key or key.startswith(("tracking.", "trial."))]
        for key, value in run.data.metrics.items():
            if "accuracy" in key:
                assert float(f"{value:.6g}") == value, (key, value)  # 0.9104, not 0.9103999733924866

    pruned = [job for job in sweeps["search"][1] if record.pruned_at(job) is not None]
    assert pruned, "the search pruned no trial: the fixture's pruner no longer bites"
    for trial in pruned:
        epoch = record.pruned_at(trial)
        at_pruning = {m.step: m.value for m in client.get_metric_history(trial.info.run_id, "val_accuracy")}[epoch]
        assert trial.data.metrics["final_val_accuracy"] == at_pruning  # charts place it by its real value
        assert re.match(r"trial \d+ \(pruned\) ", trial.info.run_name) and "test_accuracy" not in trial.data.metrics


def test_the_ui_opens_on_training_runs_groups_seeds_and_links_a_sweeps_jobs(ui_server, browser, tmp_path):
    """MLflow 3.17 opens every experiment in the view its Model training / GenAI switch holds (in the
    browser's storage, GenAI until switched), whatever the experiment's own tags say: the README says to
    click "Model training" once. After that, the experiments list leads to the training runs."""
    url, client = ui_server
    experiment = client.get_experiment_by_name("imdb-exp").experiment_id
    shots = Path(os.environ.get("IMDB_EXP_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    browser.get(f"{url}/#/experiments")
    wait_for_text(browser, "imdb-exp")
    browser.find_element(By.XPATH, "//*[normalize-space(text())='Model training']").click()
    browser.find_element(By.LINK_TEXT, "imdb-exp").click()
    wait_for_text(browser, "Run Name", "sweep optimizer x seed, 6 jobs")
    assert "workflowType=machine_learning" in browser.current_url and "/runs" in browser.current_url

    # Grouped by the configuration tag: the seed sweep's two configurations, three runs each.
    close_the_assistant(browser)
    browser.find_element(By.XPATH, "//*[normalize-space(text())='Group by']").click()
    menu = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "[role=menu]"))
    menu.find_element(By.XPATH, f".//*[normalize-space(text())='{record.CONFIG_GROUP}']").click()
    for optimizer in ("rmsprop", "adam"):
        wait_for_text(browser, f"Group: dense {optimizer} debug=tiny epochs=2")
        group = browser.find_element(By.XPATH, f"//*[contains(text(), 'Group: dense {optimizer} debug=tiny epochs=2')]")
        assert group.find_element(By.XPATH, "following::*[normalize-space(text())][1]").text == "3"
    assert browser.save_screenshot(str(shots / "mlflow-ui-runs-grouped-by-configuration.png"))

    # The column picker offers the settings a user chose and the tags that say what a run is.
    browser.find_element(By.XPATH, "//button[normalize-space(.)='Columns']").click()
    picker = WebDriverWait(browser, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "[role=dialog]"))
    offered = {kind: int(re.search(rf"{kind} \((\d+)\)", picker.text).group(1)) for kind in ("Parameters", "Tags")}
    assert sum(offered.values()) <= 60, offered
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)

    browser.get(f"{url}/#/experiments/{experiment}/runs?workflowType=machine_learning&compareRunsMode=CHART")
    wait_for_text(browser, "Model metrics", "Group: dense")
    close_the_assistant(browser)
    time.sleep(3)  # the charts draw after the text
    assert browser.save_screenshot(str(shots / "mlflow-ui-charts-grouped-by-configuration.png"))

    # A sweep's parent: its description links every job by name, the best marked.
    parent, jobs = sweeps_of(client)["sweep"]
    browser.get(f"{url}/{store.run_page(experiment, parent.info.run_id)}")
    wait_for_text(browser, "Show more")  # the page shows a description's first lines
    browser.find_element(By.XPATH, "//*[normalize-space(text())='Show more']").click()
    wait_for_text(browser, *(job.info.run_name for job in jobs), "(best)")
    links = {a.text: a.get_attribute("href") for a in browser.find_elements(By.TAG_NAME, "a")}
    assert all(job.info.run_id in links.get(job.info.run_name, "") for job in jobs)
    assert browser.save_screenshot(str(shots / "mlflow-ui-sweep-description.png"))

    # A search's trials side by side, pruned ones named so.
    _, trials = sweeps_of(client)["search"]
    ids = ",".join(f"%22{trial.info.run_id}%22" for trial in trials)
    browser.get(f"{url}/#/compare-runs?runs=[{ids}]&experiments=[%22{experiment}%22]")
    wait_for_text(browser, "(pruned)", "final_val_accuracy")
    close_the_assistant(browser)
    assert browser.save_screenshot(str(shots / "mlflow-ui-search-compared.png"))


def close_the_assistant(driver) -> None:
    """MLflow 3.17's assistant panel takes a third of the window; closed where it shows."""
    for button in driver.find_elements(By.CSS_SELECTOR, "[data-component-id='mlflow.assistant.chat_panel.close']"):
        button.click()


def test_ui_shows_the_experiment_runs_metrics_and_learning_curve(ui_server, browser, tmp_path):
    url, client = ui_server
    experiment = client.get_experiment_by_name("imdb-exp")
    _, runs = recorded_runs(client.tracking_uri)
    single = runs[0]
    parent = next(r for r in runs if record.is_sweep(r))

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
