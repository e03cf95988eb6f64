"""`sweep report`: the comparison per placement and its pictures, read back through
Optuna's and MLflow's own APIs. One real tiny study (with its baselines) is trained once
for the module, and a multi-objective one for its Pareto front; the odd studies here
(one trial, a stored confirmation) are built from the real study's trials."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest
from click.testing import CliRunner
from conftest import tiny_study, write_study
from mlflow.tracking import MlflowClient

from sweep.answers.confirm import Confirmation, ConfirmedConfig, stored_confirmation
from sweep.answers.rows import placement_coefficients
from sweep.answers.tables import number_format
from sweep.cli import cli
from sweep.keys import STUDY_UID
from sweep.results.queries import generalization_gap
from sweep.search.grouping import group_label
from sweep.spec import parse_spec
from sweep.storage.connect import open_storage
from sweep.study.create import create_or_resume

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAME = "tiny-report"


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _report(name: str, storage: str, tracking: str, out: Path, *extra: str):
    return _invoke("report", name, "--storage", storage, "--tracking-uri", tracking,
                   "--output", str(out), "--no-confirm", *extra)


def _parent_run(tracking: str, study: Any) -> Any:
    client = MlflowClient(tracking)
    spec = study.user_attrs["spec"]
    experiment = client.get_experiment_by_name(spec.get("tracking", {}).get("experiment")
                                               or spec["name"])
    (run,) = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`sweep.role` = 'study' and "
                      f"tags.`sweep.study_uid` = '{study.user_attrs[STUDY_UID]}'")
    return run


def _label(trial: Any) -> str:
    """The report's group of a trial of the tiny study, by the rule README states: a
    baseline's kind, `none (baseline)` for a model without penalty, else the placement."""
    if trial.user_attrs.get("baseline"):
        return f"{trial.user_attrs['baseline']} (baseline)"
    return "none (baseline)" if trial.user_attrs["placement"] == {} else \
        trial.params["placement"]


def _complete(study: Any) -> list[Any]:
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def _markdown_rows(markdown: str, section: str) -> dict[str, list[str]]:
    """The rows of the Markdown table under ``## section``, by their first cell."""
    section_text = markdown.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    table = [line for line in section_text.splitlines()[2:] if line.startswith("|")]
    rows = {}
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows[cells[0]] = cells
    return rows


@dataclass(frozen=True)
class Reported:
    storage: str
    tracking: str
    out: Path
    output: str


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory, tracking_uri: str) -> Reported:
    """A real tiny study with both baselines (5 trials of 2 epochs) and its report."""
    folder = tmp_path_factory.mktemp("report")
    storage = f"sqlite:///{folder / 'sweep.db'}"
    search = dict(tiny_study()["search"], baselines=["none", "uniform_l2"])
    study_file = write_study(folder / "s.yaml", tiny_study(
        name=NAME, search=search, budget={"n_trials": 5}, report={"confirm_top": 0}))
    run = _invoke("run", str(study_file), "--storage", storage, "--tracking-uri",
                  tracking_uri, "--no-progress")
    assert run.exit_code == 0, run.output
    # Without --no-confirm: confirm_top is 0, so no re-training is asked for.
    result = _invoke("report", NAME, "--storage", storage, "--tracking-uri", tracking_uri,
                     "--output", str(folder / "out"))
    assert result.exit_code == 0, result.output
    return Reported(storage, tracking_uri, folder / "out", result.output)


# ------------------------------------------------------------------ files and MLflow
def test_report_writes_tables_and_pictures(reported: Reported) -> None:
    out = reported.out
    markdown = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert "## Comparison per placement" in markdown
    assert page.startswith("<!DOCTYPE html>") and "<table>" in page
    drawn = ["optimization_history", "objective_by_placement", "slice", "weight_l2_curves"]
    if int(optuna.__version__.split(".")[0]) >= 5:  # draws trials that lack a parameter
        drawn.append("parallel_coordinates")
    for name in drawn:
        png = (out / f"{name}.png").read_bytes()
        assert png.startswith(PNG_MAGIC) and len(png) > 1000, name
        assert not (out / f"{name}.html").exists(), name  # the charts live in report.html
        assert f"({name}.png)" in markdown and f"(report.html#{name})" in markdown
        assert f'id="chart-{name}"' in page and f"<h3 id='{name}'>" in page
    # The page works offline and in MLflow's viewer: plotly.js inside it, once; nothing
    # loaded from elsewhere, no link that leaves the page; each chart's PNG where scripts
    # do not run.
    assert page.count("<script type='text/javascript'>/**") == 1
    markup = re.sub(r"<script.*?</script>", "", page, flags=re.DOTALL)
    assert "<script" not in markup and "href=" not in markup
    assert page.count("<noscript><img src='data:image/png;base64,") == len(drawn)
    # Too few trials share their (conditional) parameters: skipped, and said why.
    assert "### Parameter importances" in markdown and "_Skipped: needs" in markdown
    assert not (out / "pareto_front.png").exists()  # one objective
    assert "Comparison per placement" in reported.output  # the terminal table


def test_report_is_logged_on_the_parent_run_with_the_best_values(reported: Reported) -> None:
    study = optuna.load_study(study_name=NAME, storage=reported.storage)
    run = _parent_run(reported.tracking, study)
    client = MlflowClient(reported.tracking)
    logged = {Path(item.path).name for item in client.list_artifacts(run.info.run_id, "report")}
    assert logged == {path.name for path in reported.out.iterdir()}
    assert "study_spec.json" in {i.path for i in client.list_artifacts(run.info.run_id)}

    best = max(_complete(study), key=lambda t: (t.values[0], -t.number))
    metrics, params = run.data.metrics, run.data.params
    assert metrics["best/val_accuracy"] == pytest.approx(best.values[0])
    assert metrics["best/trial_number"] == best.number
    assert params["best/placement"] == _label(best)
    for name, value in best.params.items():
        assert params[f"best/{name}"] == str(value)

    # The study run explains the study: its settings, what won, whether it is real.
    assert params["study/sampler"] == "tpe"
    assert params["study/placements"] == "none, first, all"
    assert params["study/objective"] == "val_accuracy (maximize)"
    note = run.data.tags["mlflow.note.content"]
    assert f"- Best on validation: [configuration #{best.number}](#/experiments/" in note
    # The verdict first: the pick, not confirmed yet and what confirms it; or, where no
    # placement beat it (TensorFlow's kernels differ between CPUs, and so does the winner
    # of five 2-epoch trials), no regularization.
    first = note.splitlines()[0]
    if best.user_attrs.get("baseline") == "none":
        assert first == (f"**No regularization (#{best.number}) is the best configuration on "
                         f"validation (val_accuracy {best.values[0]:.4f}, 1 seed): no penalty "
                         "placement beat it.**")
    else:
        assert first.startswith(f"**#{best.number} (")
        assert "not confirmed over seeds yet: `sweep report" in first
    assert "- The full report: artifacts, `report/report.html`." in note
    assert run.data.tags["best/confirmation"] == "not confirmed over seeds yet"


# ------------------------------------------------------------------ the table is the trials
def test_placement_table_shows_each_groups_best_trial_exactly(reported: Reported) -> None:
    study = optuna.load_study(study_name=NAME, storage=reported.storage)
    complete = _complete(study)
    assert parse_spec(study.user_attrs["spec"]).search.placement.choices == (
        "none", "first", "all")
    rows = json.loads((reported.out / "report.json").read_text())["placements"]

    labels = [row["placement"] for row in rows]
    assert {"none (baseline)", "uniform_l2 (baseline)"} <= set(labels)
    assert len(labels) == len(set(labels))
    trained = [t for t in complete if "duplicate_of" not in t.user_attrs]
    assert sum(row["trials"] for row in rows) == len(trained)  # one seed each: no racing
    baseline = next(t for t in complete if t.user_attrs.get("baseline") == "none")
    markdown = _markdown_rows((reported.out / "report.md").read_text(),
                              "Comparison per placement")
    for row in rows:
        members = [t for t in trained if _label(t) == row["placement"]]
        assert row["trials"] == row["configurations"] == len(members)
        best = study.trials[row["trial"]]
        # Chosen on validation: no member has a better validation value.
        assert best.values[0] == max(t.values[0] for t in members)
        assert row["value"] == best.values[0]
        assert row["vs_no_reg"] == best.values[0] - baseline.values[0]
        for key in ("final/train_data_loss", "final/train_accuracy", "final/val_data_loss",
                    "final/val_accuracy", "final/test_data_loss", "final/test_accuracy",
                    "final/penalty_total", "final/weights_l2_total",
                    "final/weights_sparsity"):
            assert row[key] == best.user_attrs[key], key
        assert row["gap"] == best.user_attrs["final/train_accuracy"] - \
            best.user_attrs["final/val_accuracy"]
        # Searched coefficients, else (baselines) the one value every layer got.
        applied = {kind: value for layer in best.user_attrs["placement"].values()
                   for kinds in layer.values() for kind, value in kinds.items()}
        expected = {k: v for k, v in best.params.items() if k in ("l1", "l2")} or applied
        assert row["coefficients"] == expected
        # The rendered row says the same, figure by figure.
        cells = markdown[row["placement"]]
        assert cells[1] == f"{row['configurations']} ({row['trials']})"
        assert cells[2] == f"#{row['trial']}" and cells[3] == "1"
        keys = ("vs_no_reg", "final/train_data_loss", "final/train_accuracy",
                "final/val_data_loss", "final/val_accuracy", "final/test_data_loss",
                "final/test_accuracy", "final/penalty_total", "gap",
                "final/weights_l2_total", "final/weights_sparsity")
        for cell, key in zip(cells[4:15], keys, strict=True):
            unit = 10.0 ** -len(cell.split(".")[1]) if "e" not in cell else abs(row[key]) / 100
            assert abs(float(cell) - row[key]) <= unit / 2 + 1e-12, (key, cell, row[key])
        shown = dict(item.split("=") for item in cells[15].split(", ")) \
            if row["coefficients"] else {}
        assert {k: float(v) for k, v in shown.items()} == pytest.approx(row["coefficients"],
                                                                       rel=0.01)
    # One format per column: every figure of a column has the same number of decimals.
    for column in range(4, 15):
        shapes = {len(cells[column].split(".")[-1]) for cells in markdown.values()
                  if cells[column] != "–"}
        assert len(shapes) == 1, (column, [cells[column] for cells in markdown.values()])
    assert markdown["none (baseline)"][15] == "–"  # no penalty, no coefficient
    assert markdown["uniform_l2 (baseline)"][15].startswith("l2=")


def test_report_runs_without_tensorflow_and_can_be_repeated(reported: Reported,
                                                           tmp_path: Path) -> None:
    # TensorFlow made unimportable: a report that does not confirm must not need it. The
    # second report of the same study logs the same best/* params again (no conflict).
    code = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
            "from sweep.cli import main; sys.argv = ['sweep', *sys.argv[1:]]; main()\n")
    done = subprocess.run(
        [sys.executable, "-c", code, "report", NAME, "--storage", reported.storage,
         "--tracking-uri", reported.tracking, "--no-confirm"],
        capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = tmp_path / f"report-{NAME}"  # the default --out
    assert (out / "report.html").exists()
    assert "MLflow params cannot change" not in done.stderr
    # Drawn by the painter or by the report, whichever was free: every picture but the
    # importances (too few trials with shared parameters).
    figures = json.loads((out / "report.json").read_text())["figures"]
    assert [f["name"] for f in figures if f["skipped"] is None] == [
        "optimization_history", "objective_by_placement", "parallel_coordinates", "slice",
        "weight_l2_curves"]
    assert all((out / f"{f['name']}.png").read_bytes()[:8] == PNG_MAGIC
               for f in figures if f["skipped"] is None)


def test_with_mlflow_down_the_files_are_written_and_the_failure_named(
        reported: Reported, tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = f"http://user:s3cret@127.0.0.1:{port}"
    done = subprocess.run(
        [sys.executable, "-m", "sweep", "report", NAME, "--storage", reported.storage,
         "--tracking-uri", down, "--no-confirm", "-o", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"})
    assert done.returncode == 1, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("error:")]
    assert line.startswith(f"error: report written to {tmp_path / 'out'}/ but not logged to "
                           f"MLflow at http://user:***@127.0.0.1:{port}: ")
    assert "s3cret" not in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    for name in ("report.md", "report.html", "report.json", "optimization_history.png"):
        assert (tmp_path / "out" / name).is_file(), name


# ------------------------------------------------------------------ studies built from it
def _copy_study(reported: Reported, name: str, **overrides: Any) -> Any:
    """A new study (own spec, own uid, so its own MLflow parent run) holding the real
    study's completed trials, with objective values recomputed for its spec."""
    from sweep.workers.objective import objective_values

    source = optuna.load_study(study_name=NAME, storage=reported.storage)
    search = dict(tiny_study()["search"], baselines=["none", "uniform_l2"])
    spec = parse_spec(tiny_study(name=name, search=search, report={"confirm_top": 0},
                                 budget={"n_trials": 50}, **overrides))
    study, _ = create_or_resume(spec, open_storage(reported.storage))
    for trial in _complete(source):
        final = {k: v for k, v in trial.user_attrs.items() if k.startswith("final/")}
        study.add_trial(optuna.trial.create_trial(
            params=trial.params, distributions=trial.distributions,
            values=objective_values(spec, final), user_attrs=trial.user_attrs))
    return study


def test_stored_confirmation_shows_mean_std_and_significance(reported: Reported,
                                                            tmp_path: Path) -> None:
    study = _copy_study(reported, "tiny-report-confirmed")
    # The best trial of a searched placement (a row of the table) is re-trained.
    searched = max((t for t in _complete(study) if _label(t) in ("first", "all")),
                   key=lambda t: (t.values[0], -t.number))
    base = next(t for t in _complete(study) if t.user_attrs.get("baseline") == "none")
    seeds = (11, 12, 13, 14)

    def config(label: str, trial: Any, baseline: str | None, accuracy: tuple[float, ...]):
        return ConfirmedConfig(
            label=label, trial_number=trial.number, baseline=baseline,
            placement=trial.user_attrs["placement"], seeds=seeds,
            figures={"test_accuracy": accuracy, "test_data_loss": (0.5, 0.52, 0.48, 0.5),
                     "val_accuracy": (0.7, 0.71, 0.69, 0.7)})

    confirmation = Confirmation(metric="test_accuracy", direction="maximize", configs=(
        config("no regularization", base, "none", (0.70, 0.71, 0.69, 0.70)),
        config(f"trial {searched.number}", searched, None, (0.80, 0.83, 0.79, 0.82))))
    study.set_user_attr("confirmation", confirmation.to_json())

    result = _report(study.study_name, reported.storage, reported.tracking, tmp_path / "out")
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "out" / "report.md").read_text()

    placements = _markdown_rows(markdown, "Comparison per placement")
    row = next(cells for cells in placements.values()
               if cells[2] == f"#{searched.number}")
    # Mean and sample sd of 0.80, 0.83, 0.79, 0.82; the paired t-test of its differences
    # to the baseline (0.10, 0.12, 0.10, 0.12: t = 19.05, 3 degrees of freedom).
    assert row[-2] == "0.8100 ± 0.0183 (n=4)"
    assert row[-1] == "yes (p=0.00032)"
    assert placements["none (baseline)"][-1] == "baseline"

    confirmed = _markdown_rows(markdown, "Confirmation over seeds")
    assert list(confirmed) == ["no regularization", f"trial {searched.number}"]
    cells = confirmed[f"trial {searched.number}"]
    assert cells[2] == "4"
    assert cells[3] == "0.8100 ± 0.0183"  # test accuracy, mean ± sample std
    assert cells[6] == "+0.1100 [+0.0916, +0.1284]"  # 0.11 ± t(0.975, 3) · 0.0058
    assert cells[-1] == "yes (p=0.00032)"
    assert confirmed["no regularization"][-1] == "baseline"
    data = json.loads((tmp_path / "out" / "report.json").read_text())
    assert data["confirmation"][1]["significant"] is True
    assert data["confirmation"][1]["test_accuracy_mean"] == pytest.approx(0.81)

    # The same results on the study's run, where the MLflow runs table shows them.
    metrics = _parent_run(reported.tracking, study).data.metrics
    slug = f"confirm/trial_{searched.number}"
    assert metrics[f"{slug}/test_accuracy_mean"] == pytest.approx(0.81)
    assert metrics[f"{slug}/exceeds_noise"] == 1.0
    assert metrics[f"{slug}/delta"] == pytest.approx(0.11)
    assert metrics["confirm/baseline/test_accuracy_mean"] == pytest.approx(0.7)


def test_multi_objective_study_gets_a_pareto_front(reported: Reported, tmp_path: Path) -> None:
    study_file = write_study(tmp_path / "multi.yaml", tiny_study(
        name="tiny-report-multi", sampler="nsga2", budget={"n_trials": 4},
        objective=[{"metric": "val_accuracy"}, {"metric": "penalty/total"}]))
    run = _invoke("run", str(study_file), "--storage", reported.storage, "--tracking-uri",
                  reported.tracking, "--no-progress")
    assert run.exit_code == 0, run.output
    study = optuna.load_study(study_name="tiny-report-multi", storage=reported.storage)
    assert len(_complete(study)) == 4
    result = _report(study.study_name, reported.storage, reported.tracking, tmp_path / "out")
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert (out / "pareto_front.png").read_bytes().startswith(PNG_MAGIC)
    assert 'id="chart-pareto_front"' in (out / "report.html").read_text()
    markdown = (out / "report.md").read_text()
    line = next(line for line in markdown.splitlines() if "Pareto front of" in line)
    assert "Pareto front of val_accuracy, penalty/total: trials" in line
    listed = line.split(": trials ")[1].rstrip(".").split(", ")
    assert {int(n) for n in listed} == {t.number for t in study.best_trials}
    run = _parent_run(reported.tracking, study)
    best = max(_complete(study), key=lambda t: (t.values[0], -t.number))
    assert run.data.metrics["best/val_accuracy"] == pytest.approx(best.values[0])
    assert run.data.metrics["best/penalty/total"] == pytest.approx(best.values[1])


def test_a_one_trial_study_without_baseline_still_reports(reported: Reported,
                                                         tmp_path: Path) -> None:
    source = optuna.load_study(study_name=NAME, storage=reported.storage)
    trial = next(t for t in _complete(source) if t.params)
    spec = parse_spec(tiny_study(name="tiny-report-one", report={"confirm_top": 0}))
    study, _ = create_or_resume(spec, open_storage(reported.storage))
    study.add_trial(optuna.trial.create_trial(
        params=trial.params, distributions=trial.distributions, values=trial.values,
        user_attrs=trial.user_attrs))
    result = _report("tiny-report-one", reported.storage, reported.tracking, tmp_path / "out")
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "out" / "report.md").read_text()
    assert "No completed no-regularization trial" in markdown
    assert markdown.count("_Skipped:") >= 2  # importances, parallel coordinates
    # The weight curves show the best trial alone and say why the baseline is missing.
    assert (tmp_path / "out" / "weight_l2_curves.png").read_bytes().startswith(PNG_MAGIC)
    assert "no completed no-regularization baseline" in markdown


def test_best_params_that_mlflow_cannot_change_go_to_tags(tracking_uri: str) -> None:
    from sweep.tracking.tracker import StudyTracker

    tracker = StudyTracker(tracking_uri, experiment="tiny-report-tags", study_name="t",
                           study_uid=uuid.uuid4().hex, worker="test")
    assert tracker.log_best({"best/val_accuracy": 0.5}, {"best/placement": "first"}) == []
    assert tracker.log_best({"best/val_accuracy": 0.7},
                            {"best/placement": "all", "best/l2": "0.001"}) == ["best/placement"]
    run = tracker.client.get_run(tracker.parent_run_id())
    assert run.data.metrics["best/val_accuracy"] == 0.7
    assert run.data.params == {"best/placement": "first", "best/l2": "0.001"}
    assert run.data.tags["best/placement"] == "all"
    assert tracker.log_best({}, {"best/placement": "first"}) == []
    run = tracker.client.get_run(tracker.parent_run_id())
    assert run.data.tags["best/placement"] == "first"


# ------------------------------------------------------------------ exit codes
def test_unknown_study_exits_2_and_a_study_without_results_exits_1(
        reported: Reported, tmp_path: Path) -> None:
    unknown = _report("no-such-study", reported.storage, reported.tracking, tmp_path / "a")
    assert unknown.exit_code == 2 and "no-such-study" in unknown.output
    spec = parse_spec(tiny_study(name="tiny-report-empty"))
    study, _ = create_or_resume(spec, open_storage(reported.storage))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL,
                                              user_attrs={"fail_reason": "boom"}))
    empty = _report("tiny-report-empty", reported.storage, reported.tracking, tmp_path / "b")
    assert empty.exit_code == 1
    assert "no completed trial" in empty.output
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------ pure helpers
def test_group_labels_follow_named_placements_baselines_and_masks() -> None:
    named = parse_spec(tiny_study())
    masked = parse_spec(tiny_study(search=dict(tiny_study()["search"],
                                               placement={"mask": True})))
    fixed = parse_spec(tiny_study(search=dict(tiny_study()["search"],
                                              placement={"choices": ["first"]})))

    def trial(params: dict[str, Any], **attrs: Any) -> Any:
        distributions = {k: optuna.distributions.CategoricalDistribution(
            ["none", "first", "all", True, False]) for k in params}
        return optuna.trial.create_trial(value=0.5, params=params,
                                         distributions=distributions, user_attrs=attrs)

    one = {"dense": {"kernel": {"l2": 1e-3}}}
    both = {"dense": {"kernel": {"l2": 1e-3}}, "dense_1": {"kernel": {"l2": 1e-3}}}
    assert group_label(trial({"placement": "first"}, placement=one), named) == "first"
    assert group_label(trial({}, baseline="none", placement={}), named) == "none (baseline)"
    assert group_label(trial({"mask/dense": True, "mask/dense_1": True}, placement=both),
                       masked) == "dense+dense_1"
    # No penalty anywhere is the no-regularization model, whichever way it was drawn.
    assert group_label(trial({"mask/dense": False}, placement={}), masked) == "none (baseline)"
    assert group_label(trial({"placement": "none"}, placement={}), named) == "none (baseline)"
    assert group_label(trial({}, placement=one), fixed) == "first"
    assert placement_coefficients(both) == {"l2": 1e-3}
    assert placement_coefficients({"dense": {"kernel": {"l1": 1e-4, "l2": 1e-3}},
                                   "dense_1": {"kernel": {"l2": 2e-3}}}) == {
        "l1": 1e-4, "l2/dense": 1e-3, "l2/dense_1": 2e-3}
    # Regression studies have no accuracy: the gap is on the data loss.
    assert generalization_gap({"final/train_data_loss": 0.25, "final/val_data_loss": 0.5}) \
        == 0.25


def test_number_format_is_one_format_per_column() -> None:
    accuracy = number_format([0.9666, 0.812, None])
    assert [accuracy(v) for v in (0.9666, 0.812, None)] == ["0.9666", "0.8120", "–"]
    delta = number_format((), signed=True, like=[0.9666, 0.812])
    assert [delta(v) for v in (0.002786, -0.001792, 0.0)] == ["+0.0028", "-0.0018", "+0.0000"]
    norm = number_format([12.345, 9.5])
    assert [norm(v) for v in (12.345, 9.5)] == ["12.35", "9.50"]
    penalty = number_format([1.234e-05, 3e-4])
    assert [penalty(v) for v in (1.234e-05, 0.0)] == ["1.23e-05", "0.00e+00"]


@pytest.mark.parametrize("columns", [80, 44])
def test_terminal_tables_never_break_inside_a_word(reported: Reported, tmp_path: Path,
                                                   columns: int) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sweep", "report", NAME, "--storage", reported.storage,
         "--tracking-uri", reported.tracking, "--output", str(tmp_path / "out"), "--no-confirm"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": str(columns)})
    assert done.returncode == 0, done.stderr
    table = done.stdout.split("Comparison per placement", 1)[1].split("  Each row is", 1)[0]
    assert max(len(line) for line in table.splitlines()) <= columns  # (links are never cut)
    rows = _markdown_rows((tmp_path / "out" / "report.md").read_text(),
                          "Comparison per placement")
    headers = ["trials", "best", "trial", "Δ", "val_accuracy", "vs", "no-reg", "loss"]
    for word in headers + [w for cells in rows.values() for c in cells for w in c.split()]:
        assert word in table, word  # whole, on one line: never `first+pe` / `nultimate`


# ------------------------------------------------------------------ literal figures
def _figures(val: float, train: float, test: float, val_loss: float, train_loss: float,
             test_loss: float, penalty: float, l2_total: float,
             sparsity: float) -> dict[str, float]:
    return {"final/val_accuracy": val, "final/train_accuracy": train,
            "final/test_accuracy": test, "final/val_data_loss": val_loss,
            "final/train_data_loss": train_loss, "final/test_data_loss": test_loss,
            "final/penalty_total": penalty, "final/weights_l2_total": l2_total,
            "final/weights_sparsity": sparsity}


def _synthetic_study(storage: str, name: str) -> Any:
    """Six finished trials with figures written by hand: the no-regularization baseline,
    the uniform-L2 baseline, two trials of placement `first`, one of `all` and one of
    `none` (the same model as the baseline, so the same row)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    spec = parse_spec(tiny_study(name=name, budget={"n_trials": 6}, report={"confirm_top": 0}))
    study, _ = create_or_resume(spec, open_storage(storage))
    placement = CategoricalDistribution(("none", "first", "all"))
    switch = CategoricalDistribution((True, False))
    coefficient = FloatDistribution(1e-5, 1e-2, log=True)

    def first(l2: float) -> dict[str, Any]:
        return {"dense": {"kernel": {"l2": l2}}}

    def both(l2: float) -> dict[str, Any]:
        return {"dense": {"kernel": {"l2": l2}}, "dense_1": {"kernel": {"l2": l2}}}

    trials = [  # (params, user attrs, validation accuracy)
        ({}, {"baseline": "none", "placement": {},
              **_figures(0.70, 0.80, 0.68, 0.60, 0.50, 0.62, 0.0, 3.0, 0.0)}),
        ({}, {"baseline": "uniform_l2", "placement": both(0.001),
              **_figures(0.72, 0.74, 0.71, 0.58, 0.55, 0.59, 0.012, 2.5, 0.0)}),
        ({"placement": "first", "l1_on": False, "l2": 0.002}, {"placement": first(0.002),
              **_figures(0.75, 0.78, 0.74, 0.55, 0.52, 0.57, 0.004, 2.0, 0.25)}),
        ({"placement": "first", "l1_on": False, "l2": 0.004}, {"placement": first(0.004),
              **_figures(0.73, 0.77, 0.72, 0.56, 0.53, 0.58, 0.008, 1.9, 0.0)}),
        ({"placement": "all", "l1_on": False, "l2": 0.01}, {"placement": both(0.01),
              **_figures(0.65, 0.66, 0.64, 0.70, 0.68, 0.71, 0.05, 1.2, 0.5)}),
        ({"placement": "none"}, {"placement": {}, "duplicate_of": 0,
              **_figures(0.70, 0.80, 0.68, 0.60, 0.50, 0.62, 0.0, 3.0, 0.0)}),
    ]
    known = {"placement": placement, "l1_on": switch, "l2": coefficient}
    for params, attrs in trials:
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: known[k] for k in params},
            values=[attrs["final/val_accuracy"]], user_attrs=attrs))
    return study


def test_placement_rows_of_a_hand_written_study(reported: Reported, tmp_path: Path) -> None:
    name = f"tiny-report-literal-{uuid.uuid4().hex[:6]}"
    _synthetic_study(reported.storage, name)
    result = _report(name, reported.storage, reported.tracking, tmp_path / "out")
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "out" / "report.json").read_text())["placements"]
    # Best group first; within a group its best configuration; #5 (placement none) reused
    # #0's figures: it trained nothing and is no configuration of its own.
    assert [(r["placement"], r["configurations"], r["trials"], r["trial"]) for r in rows] == [
        ("first", 2, 2, 2), ("uniform_l2 (baseline)", 1, 1, 1), ("none (baseline)", 1, 1, 0),
        ("all", 1, 1, 4)]
    by_label = {row["placement"]: row for row in rows}
    assert [round(r["vs_no_reg"], 6) for r in rows] == [0.05, 0.02, 0.0, -0.05]
    assert [round(r["gap"], 6) for r in rows] == [0.03, 0.02, 0.1, 0.01]
    assert [r["coefficients"] for r in rows] == [
        {"l2": 0.002}, {"l2": 0.001}, {}, {"l2": 0.01}]
    assert by_label["first"]["final/test_accuracy"] == 0.74
    assert by_label["all"]["final/weights_sparsity"] == 0.5

    table = _markdown_rows((tmp_path / "out" / "report.md").read_text(),
                           "Comparison per placement")
    assert list(table) == ["first", "uniform_l2 (baseline)", "none (baseline)", "all"]
    # placement | configurations (trials) | best configuration | seeds | vs no reg | train
    # loss | train acc | val loss | val acc | test loss | test acc | penalty | gap | weights
    # L2 | sparsity | coefficients
    assert table["first"][1:] == [
        "2 (2)", "#2", "1", "+0.0500", "0.5200", "0.7800", "0.5500", "0.7500", "0.5700", "0.7400",
        "0.00400", "0.0300", "2.000", "0.2500", "l2=2.00e-03"]
    assert table["none (baseline)"][1:] == [
        "1 (1)", "#0", "1", "+0.0000", "0.5000", "0.8000", "0.6000", "0.7000", "0.6200", "0.6800",
        "0.00000", "0.1000", "3.000", "0.0000", "–"]
    # One format per column: the penalty column shows 0.004 and 0.05 alike.
    assert [table[label][11] for label in table] == ["0.00400", "0.01200", "0.00000",
                                                    "0.05000"]
    assert table["all"][4] == "-0.0500" and table["all"][15] == "l2=1.00e-02"
    assert table["uniform_l2 (baseline)"][15] == "l2=1.00e-03"


def test_a_study_that_searches_dropout_compares_and_confirms_each_regularizer_family(
        tmp_path: Path, tracking_uri: str) -> None:
    """Penalties and a dropout rate searched together: one row per family (l2 on its
    placement, dropout, both), each family's best re-trained over seeds against no
    regularization, and the verdict naming the family and the dropout rate."""
    storage = f"sqlite:///{tmp_path / 'sweep.db'}"
    study = tiny_study(
        name="families", sampler="grid", budget={"n_trials": 5},
        report={"confirm_top": 1}, seeds={"confirm": 2},
        search={"targets": ["kernel"], "placement": {"choices": ["none", "all"]},
                "l2": 1.0e-3, "baselines": ["none"]})
    study["model"]["layers"][1]["Dropout"]["rate"] = {"choices": [0.0, 0.2]}
    run = _invoke("run", str(write_study(tmp_path / "f.yaml", study)), "--storage",
                  storage, "--tracking-uri", tracking_uri, "--no-progress")
    assert run.exit_code == 0, run.output
    out = tmp_path / "out"
    result = _invoke("report", "families", "--storage", storage, "--tracking-uri",
                     tracking_uri, "--output", str(out), "--no-progress")
    assert result.exit_code == 0, result.output

    rows = json.loads((out / "report.json").read_text())["placements"]
    assert sorted(row["placement"] for row in rows) == [
        "dropout", "l2 (all)", "l2 (all) + dropout", "none (baseline)"]
    stored = optuna.load_study(study_name="families", storage=storage)
    for row in rows:
        trial = stored.trials[row["trial"]]
        dropout = trial.user_attrs["settings"]["dropout/rate"]
        assert (dropout > 0) == ("dropout" in row["placement"])
        assert bool(trial.user_attrs["placement"]) == ("l2" in row["placement"])
        # Each family's best is confirmed over the 2 fresh seeds against no
        # regularization, not only the study's best.
        assert row["confirmed"] is not None and row["confirmed_n"] == 2, row["placement"]
    confirmation = stored_confirmation(stored)
    assert confirmation is not None
    assert sorted(c.settings["dropout/rate"] for c in confirmation.configs) == [
        0.0, 0.0, 0.2, 0.2]
    client = MlflowClient(tracking_uri)
    confirm_runs = client.search_runs(
        [client.get_experiment_by_name("families").experiment_id],
        filter_string="tags.`sweep.role` = 'confirm'")
    assert sorted(r.data.params["dropout/rate"] for r in confirm_runs) == [
        "0.0", "0.0", "0.0", "0.0", "0.2", "0.2", "0.2", "0.2"]

    markdown = (out / "report.md").read_text()
    table = _markdown_rows(markdown, "Comparison per regularizer")
    assert table["dropout"][table["dropout"].index("dropout/rate=0.2")] == "dropout/rate=0.2"
    if rows[0]["placement"] == "none (baseline)":
        assert f"No regularization (#{rows[0]['trial']}) is the best" in markdown
    else:  # the verdict names the family and the dropout rate it holds at
        assert f"#{rows[0]['trial']} ({rows[0]['placement']}; dropout/rate=" in markdown
    assert "Comparison per regularizer" in result.output
    # `sweep best` and `sweep status` name the best by the same family as the report.
    best = _invoke("best", "families", "--storage", storage, "--format", "json")
    assert [row["group"] for row in json.loads(best.output)] == [rows[0]["placement"]]
    status = _invoke("status", "families", "--storage", storage, "--tracking-uri",
                     tracking_uri)
    assert f"configuration #{rows[0]['trial']}, " in status.output
    assert f"({rows[0]['placement']})\n" in status.output
    # The slice plot has the dropout rate as a parameter of its own.
    page = (out / "report.html").read_text()
    chart = page.split("<h3 id='slice'>", 1)[1].split("<h3 id=", 1)[0]
    assert '"dropout\\u002frate"' in chart  # plotly's JSON escapes the slash
