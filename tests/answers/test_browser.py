"""What a newcomer sees, in a real browser (Debian's chromium, driven by selenium): the
link `sweep ui` prints opens the study's trials by name, best first, under the study's
description; the study run says what won; report.html draws its charts with no network,
fits a 1280-px window, and draws them inside MLflow's artifact preview too.

Screenshots go to ``test-artifacts/`` (README's MLflow screenshot is made here). Needs
chromium and chromedriver (`make browser` installs them where apt-get can run); without
them the tests fail and say how to install them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import answers, free_port, tiny_study, wait_for, write_study
from mlflow.tracking import MlflowClient

from sweep.cli import cli

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
NAME = "browser-study"
WIDTH = 1280


# The one-sentence answer the study's description opens with (sweep.answers.headline).
VERDICT = (r"(beats no regularization on the test split|beyond seed noise|not confirmed "
           r"over seeds yet|is the best configuration on validation)")

def _browser() -> tuple[str, str]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    pytest.fail("no chromium/chromedriver: `make browser` (run by `make test`) installs "
                "Debian's; it needs apt-get as root or with sudo")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium, driver = _browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", f"--window-size={WIDTH},900",
                     # No name resolves: nothing on these pages may come from the internet.
                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(argument)
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium must not look for drivers online
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    session.set_page_load_timeout(60)
    yield session
    session.quit()


@dataclass(frozen=True)
class Served:
    links: dict[str, str]  # what `sweep ui` printed: study name -> link
    tracking: str
    storage: str
    report: Path
    run_names: list[str]
    study_run: str
    experiment_id: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A finished tiny study with both baselines, its report with a confirmation over two
    seeds, and `sweep ui` serving its tracking store."""
    folder = tmp_path_factory.mktemp("browser")
    storage = f"sqlite:///{folder / 'sweep.db'}"
    tracking = f"sqlite:///{folder / 'mlflow.db'}"
    search = dict(tiny_study()["search"], baselines=["none", "uniform_l2"])
    study_file = write_study(folder / "s.yaml", tiny_study(
        name=NAME, search=search, budget={"n_trials": 5},
        report={"confirm_top": 1}, seeds={"confirm": 2}))
    runner = CliRunner()
    common = ["--storage", storage, "--tracking-uri", tracking]
    done = runner.invoke(cli, ["run", str(study_file), *common, "--no-progress"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(cli, ["report", NAME, *common, "--output", str(folder / "report")])
    assert done.exit_code == 0, done.output

    client = MlflowClient(tracking)
    experiment_id = client.get_experiment_by_name(NAME).experiment_id
    runs = client.search_runs([experiment_id])
    names = [r.info.run_name for r in runs if r.data.tags.get("sweep.role") == "trial"]
    study_run = next(r.info.run_id for r in runs if r.data.tags.get("sweep.role") == "study")

    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "sweep", "ui", "--tracking-uri", tracking,
                           "--port", str(port)], stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        line = ui.stdout.readline()  # our links come first, before MLflow's output
        name, link = line.strip().split(": ", 1)
        wait_for(lambda: answers(f"http://127.0.0.1:{port}") or ui.poll() is not None,
                 timeout=90)
        assert ui.poll() is None, "sweep ui exited"
        yield Served({name: link}, tracking, storage, folder / "report", names, study_run,
                     experiment_id)
    finally:
        os.killpg(ui.pid, signal.SIGTERM)
        ui.wait(timeout=30)


def _text(browser: Any) -> str:
    return browser.find_element("tag name", "body").text


def _wait_for_text(browser: Any, *texts: str, timeout: float = 60) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, timeout).until(lambda b: all(t in _text(b) for t in texts))
    return _text(browser)


def _close_assistant(browser: Any) -> None:
    """MLflow 3.17 opens its assistant's panel over a third of the window on a browser's
    first visit (a user closes it once): closed, as a returning user sees the page."""
    for button in browser.find_elements("css selector", "button[aria-label='Close']"):
        if button.location["x"] > WIDTH * 0.7:
            button.click()


def _shot(browser: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / name))


def test_the_printed_link_opens_the_configurations_in_the_ranking_order(
        browser: Any, served: Served) -> None:
    import json

    assert list(served.links) == [NAME]
    browser.get(served.links[NAME])
    _wait_for_text(browser, "Group: #0", "seeds/mean")
    _close_assistant(browser)
    page = _wait_for_text(browser, "seeds/n")
    _shot(browser, "mlflow-runs.png")
    # The first screen: the study's verdict above the runs table, one group per
    # configuration (its runs inside), the figures over seeds as columns, and no
    # confirmation re-training among them.
    assert re.search(VERDICT, page), page[:2000]
    assert "Sort: seeds/order" in page and "Group by: sweep.configuration" in page
    for column in ("seeds/mean", "seeds/n", "final/val_accuracy"):
        assert column in page, column
    assert "confirm " not in page
    # Five trained (the budget), each in its configuration's group; a trial that sampled
    # a trained configuration again ("#5 = #0 (duplicate)") trained nothing and is folded
    # away below them, under MLflow's "Additional runs".
    trained = [n for n in served.run_names if not n.endswith("(duplicate)")]
    assert len(trained) == 5
    for name in trained:
        assert name in page, name
    if len(trained) < len(served.run_names):
        assert "Additional runs" in page
    assert "#1 baseline: uniform_l2 l2=3.2e-4" in page
    # The groups in the order `sweep best` ranks the configurations.
    best = CliRunner().invoke(cli, ["best", NAME, "--storage", served.storage, "--top", "20",
                                    "--format", "json"])
    ranked = [row["number"] for row in json.loads(best.output)]
    shown = [int(n) for n in re.findall(r"Group: #(\d+)", page)]
    assert shown == ranked, (shown, ranked)
    # The figures a group shows are its configuration's, as MLflow holds them.
    client = MlflowClient(served.tracking)
    named = {int(r.data.tags["sweep.configuration"][1:]): r for r in client.search_runs(
        [served.experiment_id], filter_string="metrics.`seeds/n` > 0")}
    assert sorted(named) == sorted(ranked)
    for row in json.loads(best.output):
        metrics = named[row["number"]].data.metrics
        assert (metrics["seeds/mean"], metrics["seeds/n"]) == (row["value"], row["seeds"])


def test_the_chart_view_compares_configurations_first(browser: Any, served: Served) -> None:
    browser.get(served.links[NAME] + "&compareRunsMode=CHART")
    _wait_for_text(browser, "Configurations (regsweep)", "coefficients/log10_l2")
    _close_assistant(browser)
    page = _wait_for_text(browser, "Configurations (regsweep)")
    _shot(browser, "mlflow-charts.png")
    # The study's section first and open, with its four charts: the objective's mean per
    # configuration, against each shared coefficient on a log10 axis, and per epoch...
    sections = re.findall(r"^([^\n]+)\n\((\d+)\)$", page, re.M)
    assert sections[0] == ("Configurations (regsweep)", "4"), sections
    for title in ("seeds/mean", "coefficients/log10_l1", "coefficients/log10_l2",
                  "val_accuracy"):
        assert title in page, title
    # ... and every section MLflow makes for the other metrics after it, closed: none of
    # their charts is drawn.
    names = [name for name, _ in sections]
    assert names[1:4] == ["final", "weights_l2", "weights_l1"], names
    assert "weights_l2/dense" not in page and "final/test_accuracy" not in page


def test_a_trial_page_says_what_it_trained_and_shows_its_weights_beside_the_baseline(
        browser: Any, served: Served) -> None:
    client = MlflowClient(served.tracking)
    run = next(r for r in client.search_runs([served.experiment_id], filter_string=(
        "tags.`sweep.role` = 'trial'")) if not r.data.tags.get("sweep.baseline")
        and "duplicate" not in r.info.run_name)
    base = served.links[NAME].split("/#/")[0]
    page_url = f"{base}/#/experiments/{served.experiment_id}/runs/{run.info.run_id}"
    browser.get(f"{page_url}?workflowType=machine_learning")
    number = run.data.tags["optuna.trial_number"]
    page = _wait_for_text(browser, "Description", f"Configuration #{number}")
    assert "Artifacts → weights.svg" in page
    browser.get(f"{page_url}/artifacts/weights.svg?workflowType=machine_learning")
    _wait_for_text(browser, "weights.svg")
    from selenium.webdriver.support.ui import WebDriverWait

    # The picture itself, drawn by the artifact viewer.
    WebDriverWait(browser, 60).until(lambda b: any(
        image.size["width"] > 400 for image in b.find_elements("tag name", "img")))
    _shot(browser, "mlflow-trial-weights.png")


def test_the_study_run_says_what_won_and_whether_it_is_real(browser: Any,
                                                            served: Served) -> None:
    base = served.links[NAME].split("/#/")[0]
    browser.get(f"{base}/#/experiments/{served.experiment_id}/runs/{served.study_run}"
                "?workflowType=machine_learning")
    page = _wait_for_text(browser, "Description", "Best on validation")
    _shot(browser, "mlflow-study-run.png")
    assert re.search(VERDICT, page), page[:2000]
    assert "Best on validation: configuration #" in page
    assert "confirm/trial_" in page  # the confirmation's figures, as metrics


def test_report_draws_offline_and_fits_1280_pixels(browser: Any, served: Served) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get((served.report / "report.html").as_uri())
    charts = browser.find_elements(By.CSS_SELECTOR, "div.chart")
    assert len(charts) >= 4
    # plotly.js is in the page: every chart draws with no network at all.
    WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(
        By.CSS_SELECTOR, "div.chart .js-plotly-plot .main-svg")) >= len(charts))
    _shot(browser, "report.png")
    assert browser.execute_script("return document.documentElement.scrollWidth") <= WIDTH
    # No table needs its own scroll bar either: each fits the page.
    overflowing = browser.execute_script(
        "return [...document.querySelectorAll('.table-wrap')]"
        ".filter(w => w.scrollWidth > w.clientWidth + 1).length")
    assert overflowing == 0


def test_report_draws_inside_mlflows_artifact_preview(browser: Any, served: Served) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base = served.links[NAME].split("/#/")[0]
    browser.get(f"{base}/#/experiments/{served.experiment_id}/runs/{served.study_run}"
                "/artifacts/report/report.html")
    frame = WebDriverWait(browser, 60).until(
        lambda b: b.find_elements(By.TAG_NAME, "iframe"))[0]
    browser.switch_to.frame(frame)
    try:
        WebDriverWait(browser, 60).until(lambda b: len(b.find_elements(
            By.CSS_SELECTOR, "div.chart .js-plotly-plot .main-svg")) >= 4)
        assert "Comparison per placement" in _text(browser)
    finally:
        browser.switch_to.default_content()
    _shot(browser, "mlflow-report-preview.png")
