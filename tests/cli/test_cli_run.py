"""End to end through the CLI, results read back with Optuna's and MLflow's own APIs."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import optuna
import pytest
from click.testing import CliRunner
from conftest import tiny_study, write_study
from mlflow.tracking import MlflowClient

from sweep.cli import cli


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _run(path: Path, storage: str, tracking: str, *extra: str):
    return _invoke("run", str(path), "--storage", storage, "--tracking-uri", tracking,
                   "--no-progress", *extra)


def _children(client: MlflowClient, experiment: str, parent_id: str):
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id],
                              filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")


def _parents(client: MlflowClient, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], filter_string="tags.`sweep.role` = 'study'")


def test_run_logs_trials_to_optuna_and_mlflow(workdir: Path, storage_url: str,
                                              tracking_uri: str) -> None:
    study_file = write_study(workdir / "study.yaml", tiny_study(name="e2e"))
    result = _run(study_file, storage_url, tracking_uri)
    assert result.exit_code == 0, result.output
    assert "best configuration: #" in result.output
    # The hint opens the study's runs table (not MLflow 3's GenAI view) on `sweep ui`.
    experiment = MlflowClient(tracking_uri).get_experiment_by_name("e2e")
    experiment_id = experiment.experiment_id
    # Of a known kind: MLflow's UI asks a user to confirm a guessed one in a dialog.
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    # Its artifacts beside the SQLite database, not in the folder the worker ran in.
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    assert experiment.artifact_location == (database.parent / "mlartifacts" / "e2e").as_uri()
    # The study's saved view: one group per configuration, in the ranking's order, its
    # figures over seeds as columns, the confirmation re-trainings filtered out.
    assert (f"inspect it with: sweep ui --tracking-uri '{tracking_uri}', then open "
            f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs"
            "?workflowType=machine_learning&viewStateShareKey=regsweep-e2e\n") in result.output
    view = json.loads(experiment.tags["mlflow.sharedViewState.regsweep-e2e"])
    assert view["groupBy"] == {"aggregateFunction": "average", "groupByKeys": [
        {"mode": "tag", "groupByData": "sweep.configuration"}]}
    assert (view["orderByKey"], view["orderByAsc"]) == ("metrics.`seeds/order`", False)
    assert view["searchFilter"] == "tags.`sweep.role` = 'trial'"
    assert view["selectedColumns"][:3] == [
        "metrics.`seeds/mean`", "metrics.`seeds/n`", "metrics.`seeds/sd`"]

    study = optuna.load_study(study_name="e2e", storage=storage_url)
    assert len(study.trials) == 3
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.COMPLETE}
    assert study.user_attrs["spec"]["name"] == "e2e"

    client = MlflowClient(tracking_uri)
    (parent,) = _parents(client, "e2e")
    assert parent.data.tags["optuna.study_name"] == "e2e"
    assert parent.info.status == "FINISHED"
    # ... and links to the study's run and to the best trial's run (ties: the earlier).
    best = min(study.trials, key=lambda t: (-t.value, t.number))
    runs = f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs"
    links = [f"  study run: {runs}/{parent.info.run_id}",
             f"  best configuration #{best.number}: {runs}/{best.user_attrs['mlflow_run_id']}"]
    assert all(link in result.output for link in links), result.output
    status = _invoke("status", "e2e", "--storage", storage_url, "--tracking-uri", tracking_uri)
    assert status.exit_code == 0 and all(link in status.output for link in links), status.output
    children = {int(r.data.tags["optuna.trial_number"]): r for r in
                _children(client, "e2e", parent.info.run_id)}
    assert sorted(children) == [0, 1, 2]
    for trial in study.trials:
        run = children[trial.number]
        # The links go both ways.
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        # Named by what it tried (or by the trial whose figures it reuses).
        if "duplicate_of" in trial.user_attrs:
            assert run.info.run_name == \
                f"#{trial.number} = #{trial.user_attrs['duplicate_of']} (duplicate)"
        else:
            assert run.info.run_name.startswith(f"#{trial.number} {trial.params['placement']}")
        assert run.data.params["placement"] == trial.params["placement"]
        assert run.info.status == "FINISHED"
        assert run.data.tags["sweep.worker"]
        for name, value in trial.params.items():
            assert run.data.params[name] == str(value)
        assert run.data.params["seed"] == str(trial.user_attrs["seed"])
        # Metric histories hold one point per epoch, steps 1..epochs; weight statistics
        # are grouped by statistic; a layer's penalty series exists where it has one.
        trained = "duplicate_of" not in trial.user_attrs
        penalized = trial.user_attrs["placement"]
        for key in ("loss", "val_accuracy", "val_data_loss", "weights_l2/dense",
                    "sparsity/dense_1", "penalty/total"):
            history = client.get_metric_history(run.info.run_id, key)
            assert sorted(m.step for m in history) == ([1, 2] if trained else []), key
        for layer in ("dense", "dense_1"):
            history = client.get_metric_history(run.info.run_id, f"penalty/{layer}")
            assert len(history) == (2 if trained and layer in penalized else 0), layer
        # One picture of its kernel norms, beside no regularization's once that trained.
        if trained:
            svg = ElementTree.fromstring(Path(client.download_artifacts(
                run.info.run_id, "weights.svg", str(workdir))).read_text())
            texts = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
            lines = list(svg.iter("{http://www.w3.org/2000/svg}polyline"))
            unregularized = [t for t in study.trials if t.number < trial.number
                             and t.user_attrs["placement"] == {}
                             and "duplicate_of" not in t.user_attrs]
            dashed = 2 if unregularized and penalized else 0
            assert {"dense", "dense_1"} <= set(texts)
            # ... which its description, at the top of its page, points to.
            assert run.data.tags["mlflow.note.content"].startswith(
                f"**Configuration #{trial.number}** (")
            assert "Artifacts → `weights.svg`" in run.data.tags["mlflow.note.content"]
            assert (len(lines), sum("stroke-dasharray" in x.attrib for x in lines)) == (
                2 + dashed, dashed)
        # Final figures are on both sides and the objective is the validation figure.
        assert trial.value == pytest.approx(trial.user_attrs["final/val_accuracy"])
        for key in ("final/train_accuracy", "final/test_accuracy", "final/val_data_loss",
                    "final/penalty_total"):
            assert run.data.metrics[key] == pytest.approx(trial.user_attrs[key])
        placement = trial.user_attrs["placement"]
        if not placement:
            assert trial.user_attrs["final/penalty_total"] == 0.0
        for layer, targets in placement.items():
            for kind, value in targets["kernel"].items():
                assert float(run.data.params[f"resolved/{layer}/kernel/{kind}"]) == value

    # Read-only commands on the same stores.
    status = json.loads(_invoke("status", "e2e", "--storage", storage_url, "--format",
                                "json").output)
    assert status["finished"] == 3 and status["states"]["COMPLETE"] == 3
    assert status["best_value"] == pytest.approx(study.best_value)
    best = json.loads(_invoke("best", "e2e", "--storage", storage_url, "--top", "2",
                              "--format", "json").output)
    assert [row["value"] for row in best] == sorted(
        (t.value for t in study.trials), reverse=True)[:2]
    table = _invoke("best", "e2e", "--storage", storage_url, "--top", "5")
    assert table.exit_code == 0 and "placement" in table.output
    exported = _invoke("export", "e2e", "--storage", storage_url, "--format", "csv").output
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [int(r["number"]) for r in rows] == [0, 1, 2]
    assert {r["mlflow_run_id"] for r in rows} == {r.info.run_id for r in children.values()}
    assert all(r["final/test_accuracy"] for r in rows)
    out = workdir / "trials.json"
    assert _invoke("export", "e2e", "--storage", storage_url, "--format", "json",
                   "-o", str(out)).exit_code == 0
    assert len(json.loads(out.read_text())) == 3
    listed = json.loads(_invoke("list", "--storage", storage_url, "--format", "json").output)
    assert [(r["study"], r["complete"]) for r in listed] == [("e2e", 3)]


def test_non_finite_loss_fails_the_trial_and_the_study_goes_on(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    # An L2 coefficient of 1e38 overflows float32: the loss becomes inf, then NaN.
    search = dict(tiny_study()["search"], placement={"choices": ["all"]},
                  l1=0.0, l2={"choices": [1.0e-4, 1.0e38]})
    study_file = write_study(workdir / "nan.yaml", tiny_study(
        name="nan", search=search, sampler="grid", budget={"n_trials": 2}))
    result = _run(study_file, storage_url, tracking_uri)
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name="nan", storage=storage_url)
    by_l2 = {t.params["l2"]: t for t in study.trials}
    failed, ok = by_l2[1.0e38], by_l2[1.0e-4]
    assert failed.state == optuna.trial.TrialState.FAIL
    assert "non-finite" in failed.user_attrs["fail_reason"]
    assert ok.state == optuna.trial.TrialState.COMPLETE
    run = MlflowClient(tracking_uri).get_run(failed.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED"
    assert "non-finite" in run.data.tags["sweep.fail_reason"]


def test_resume_extends_the_budget_and_reuses_the_parent_run(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    study_file = write_study(workdir / "s.yaml", tiny_study(name="resume",
                                                            budget={"n_trials": 1}))
    assert _run(study_file, storage_url, tracking_uri).exit_code == 0
    again = _run(study_file, storage_url, tracking_uri, "--n-trials", "2")
    assert again.exit_code == 0, again.output
    study = optuna.load_study(study_name="resume", storage=storage_url)
    assert len(study.trials) == 2
    assert study.user_attrs["spec"]["budget"]["n_trials"] == 2
    client = MlflowClient(tracking_uri)
    (parent,) = _parents(client, "resume")
    assert len(_children(client, "resume", parent.info.run_id)) == 2

    # A changed spec is refused, and nothing is touched.
    changed = tiny_study(name="resume", budget={"n_trials": 2})
    changed["train"]["epochs"] = 3
    write_study(study_file, changed)
    refused = _run(study_file, storage_url, tracking_uri)
    assert refused.exit_code == 2
    assert "train.epochs: stored 2, file 3" in refused.output
    assert "--force-new" in refused.output
    assert len(optuna.load_study(study_name="resume", storage=storage_url).trials) == 2

    # --force-new keeps the old study under an archive name and starts afresh.
    fresh = _run(study_file, storage_url, tracking_uri, "--force-new", "--n-trials", "1")
    assert fresh.exit_code == 0, fresh.output
    names = optuna.get_all_study_names(storage_url)
    assert "resume" in names
    archived = [n for n in names if n.startswith("resume.archived-")]
    assert len(archived) == 1
    assert len(optuna.load_study(study_name=archived[0], storage=storage_url).trials) == 2
    assert len(optuna.load_study(study_name="resume", storage=storage_url).trials) == 1
    assert len(_parents(client, "resume")) == 2


def test_bad_spec_writes_nothing(workdir: Path) -> None:
    bad = tiny_study(name="bad")
    bad["train"]["epochs"] = 0
    study_file = write_study(workdir / "bad.yaml", bad)
    result = _invoke("run", str(study_file))
    assert result.exit_code == 2
    assert "train.epochs" in result.output
    assert not (workdir / "sweep.db").exists()
    assert not (workdir / "mlflow.db").exists()


def test_unknown_study_and_missing_storage_exit_2(workdir: Path, storage_url: str,
                                                  tracking_uri: str) -> None:
    result = _invoke("status", "nope")
    assert result.exit_code == 2 and "--storage" in result.output
    study_file = write_study(workdir / "c.yaml", tiny_study(name="created"))
    created = _invoke("create", str(study_file), "--storage", storage_url,
                      "--tracking-uri", tracking_uri)
    assert created.exit_code == 0, created.output
    missing = _invoke("status", "nope", "--storage", storage_url)
    assert missing.exit_code == 2 and "'nope'" in missing.output


def test_worker_runs_a_created_study_with_a_per_worker_cap(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    study_file = write_study(workdir / "w.yaml", tiny_study(name="workers"))
    assert _invoke("create", str(study_file), "--storage", storage_url,
                   "--tracking-uri", tracking_uri).exit_code == 0
    result = _invoke("worker", "workers", "--storage", storage_url, "--tracking-uri",
                     tracking_uri, "--max-trials", "1", "--no-progress")
    assert result.exit_code == 0, result.output
    assert len(optuna.load_study(study_name="workers", storage=storage_url).trials) == 1


def test_several_workers_on_sqlite_are_refused_with_advice(workdir: Path) -> None:
    study_file = write_study(workdir / "k.yaml", tiny_study())
    result = _invoke("run", str(study_file), "--workers", "2")
    assert result.exit_code == 2
    assert "postgresql://" in result.output
    assert not (workdir / "sweep.db").exists()


# (`validate --build` builds the model on the data, which takes Keras: not in this list.)
@pytest.mark.parametrize("command", [["--help"], ["validate", "STUDY"], ["status", "tiny"],
                                     ["best", "tiny"],
                                     ["export", "tiny", "--format", "csv"], ["list"]])
def test_commands_that_do_not_train_do_not_import_tensorflow_or_mlflow(
        workdir: Path, command: list[str]) -> None:
    study_file = write_study(workdir / "t.yaml", tiny_study())
    import optuna as _optuna

    # A study with one finished trial, written directly so this test needs no training.
    from sweep.spec import parse_spec

    study = _optuna.create_study(study_name="tiny", storage="sqlite:///sweep.db",
                                 direction="maximize")
    study.set_user_attr("spec", parse_spec(tiny_study()).canonical())
    study.add_trial(_optuna.trial.create_trial(value=0.5, params={}, distributions={},
                                               user_attrs={"placement": {}}))
    args = [str(study_file) if a == "STUDY" else a for a in command]
    # Looked at on the way out (read commands end through sweep.cli.group.leave, which
    # runs the exit handlers and skips the rest of Python's teardown).
    code = ("import atexit, sys; from sweep.cli import main\n"
            "atexit.register(lambda: print('HEAVY', [m for m in ('tensorflow', 'keras', "
            "'mlflow') if m in sys.modules]))\n"
            "sys.argv = ['sweep', *sys.argv[1:]]\nmain()\n")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout


def test_passwords_are_masked_in_output(workdir: Path) -> None:
    study_file = write_study(workdir / "p.yaml", tiny_study())
    result = _invoke("create", str(study_file), "--storage",
                     "postgresql://user:s3cret@127.0.0.1:1/none")
    assert result.exit_code == 1
    assert "s3cret" not in result.output
    assert "user:***@" in result.output


def test_worker_waits_for_a_study_created_after_it_started(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:

    gone = CliRunner().invoke(cli, ["worker", "later", "--storage", storage_url, "--wait", "2"])
    assert gone.exit_code == 2 and "no study storage" in gone.output
    worker = subprocess.Popen(
        [sys.executable, "-m", "sweep", "worker", "later", "--storage", storage_url,
         "--tracking-uri", tracking_uri, "--wait", "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # It says it is waiting (an event, not a guess from elapsed time) and keeps waiting.
    assert worker.stderr is not None
    line = ""
    while "waiting up to 120 s for study 'later'" not in line:
        line = worker.stderr.readline()
        assert line or worker.poll() is None, "the worker ended without waiting"
    assert worker.poll() is None
    study_file = write_study(workdir / "later.yaml", tiny_study(name="later",
                                                                budget={"n_trials": 1}))
    assert _invoke("create", str(study_file), "--storage", storage_url,
                   "--tracking-uri", tracking_uri).exit_code == 0
    _, err = worker.communicate(timeout=300)
    assert worker.returncode == 0, err
    assert len(optuna.load_study(study_name="later", storage=storage_url).trials) == 1


def test_run_ends_without_teardown_once_its_trials_and_runs_are_stored(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    """`sweep run` skips Python's teardown after its answer (sweep.cli.group leave), as
    the read commands do: the answer is flushed, the exit handlers ran, and what it
    trained is in the study and in MLflow."""
    marker, torn = workdir / "atexit.txt", workdir / "teardown.txt"
    path = write_study(workdir / "s.yaml", tiny_study(name="leaves", budget={"n_trials": 1}))
    code = ("import atexit, sys; from pathlib import Path; "
            f"atexit.register(lambda: Path({str(marker)!r}).write_text('ran')); "
            f"Freed = type('Freed', (), {{'__del__': lambda self, touch=open, path={str(torn)!r}: "
            "touch(path, 'w').close()}); kept = Freed(); "
            "from sweep.cli import main; sys.argv[0] = 'sweep'; main()")
    done = subprocess.run([sys.executable, "-c", code, "run", str(path), "--storage",
                           storage_url, "--tracking-uri", tracking_uri, "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "best configuration: #0" in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith("tables, plots and a check")
    assert marker.read_text() == "ran"
    assert not torn.exists()  # the teardown was skipped
    (trial,) = optuna.load_study(study_name="leaves", storage=storage_url).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    client = MlflowClient(tracking_uri)
    assert client.get_run(trial.user_attrs["mlflow_run_id"]).info.status == "FINISHED"
    (parent,) = _parents(client, "leaves")
    assert parent.info.status == "FINISHED"
