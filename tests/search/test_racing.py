"""sweep.search.racing: leading configurations get further seeds while the study runs (a
successive-halving schedule over seeds), the sampler is shown each configuration's mean
over its seeds, and the study's answer is ranked by that mean, not by a lucky draw."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from click.testing import CliRunner
from conftest import tiny_study, write_study

from sweep.cli import cli
from sweep.errors import SpecError
from sweep.search.racing import (
    budget_plan,
    configurations,
    due,
    estimates,
    ranked,
    rung_sizes,
)
from sweep.spec import RacingSpec, parse_spec

COMPLETE = optuna.trial.TrialState.COMPLETE


def _placement(k: int) -> dict:
    return {} if k == 0 else {"dense": {"kernel": {"l2": k / 1000}}}


def _trial(number: int, value: float | None, config: int, state=COMPLETE, **attrs):
    attrs = {"placement": _placement(config), **attrs}
    if config == 0:
        attrs.setdefault("baseline", "none")
    trial = optuna.trial.create_trial(
        state=state, value=value if state == COMPLETE else None, user_attrs=attrs)
    trial.number = number
    return trial


def _spec(**racing: object):
    search = dict(tiny_study()["search"], baselines=["none"])
    return parse_spec(tiny_study(search=search, budget={"n_trials": 30},
                                 seeds={"racing": racing} if racing else {}))


def _rerun(number: int, config: int, origin: int, index: int, own: float, mean: float,
           seeds: int):
    return _trial(number, mean, config, seed_of=origin, seed_index=index, seed_value=own,
                  seeds=seeds)


def test_rungs_grow_one_three_seven_up_to_the_maximum() -> None:
    assert rung_sizes(RacingSpec()) == (1, 3, 5)
    assert rung_sizes(RacingSpec(min=1, max=20)) == (1, 3, 7, 15, 20)
    assert rung_sizes(RacingSpec(min=2, max=10)) == (2, 6, 10)
    assert rung_sizes(RacingSpec(min=3, max=3)) == (3,)


def test_the_best_third_of_a_rung_is_promoted_and_the_baseline_follows() -> None:
    spec = _spec()
    values = [0.50, 0.61, 0.64, 0.62, 0.70, 0.66, 0.60]
    trials = [_trial(n, v, n) for n, v in enumerate(values)]
    # 7 configurations finished one seed: the best ⌊7/3⌋ = 2 (#4, #5) get two more seeds
    # each; the no-regularization baseline (#0) as many as the most-seeded.
    assert [(c.first.number, extra) for c, extra in due(configurations(trials), spec)] == [
        (4, 2), (5, 2), (0, 2)]


def test_a_configuration_climbs_when_it_leads_the_rung_it_reached() -> None:
    spec = _spec()
    trials = [_trial(n, v, n) for n, v in enumerate(
        [0.50, 0.61, 0.64, 0.62, 0.70, 0.66, 0.60])]
    trials += [_rerun(7, 4, 4, 1, 0.64, 0.67, 2), _rerun(8, 4, 4, 2, 0.66, 0.6667, 3),
               _rerun(9, 5, 5, 1, 0.67, 0.665, 2), _rerun(10, 5, 5, 2, 0.68, 0.67, 3),
               _rerun(11, 0, 0, 1, 0.52, 0.51, 2), _rerun(12, 0, 0, 2, 0.51, 0.51, 3)]
    # Rung 1 (3 seeds): #4 mean 0.6667, #5 0.67, the baseline 0.51: ⌊3/3⌋ = 1 promoted,
    # #5, to 5 seeds; the baseline follows it to 5.
    assert [(c.first.number, extra) for c, extra in due(configurations(trials), spec)] == [
        (5, 2), (0, 2)]
    # A queued re-run holds its seed: nothing is queued twice.
    trials += [_trial(13, None, 5, state=optuna.trial.TrialState.WAITING, seed_of=5),
               _trial(14, None, 5, state=optuna.trial.TrialState.RUNNING, seed_of=5)]
    assert [(c.first.number, extra) for c, extra in due(configurations(trials), spec)] == [
        (0, 2)]


def test_the_answer_is_the_best_survivor_of_the_last_rung_reached() -> None:
    spec = _spec()
    trials = [_trial(n, v, n) for n, v in enumerate([0.50, 0.61, 0.64, 0.62, 0.70, 0.66])]
    trials += [_rerun(7, 4, 4, 1, 0.60, 0.65, 2), _rerun(8, 4, 4, 2, 0.62, 0.64, 3),
               _rerun(9, 5, 5, 1, 0.67, 0.665, 2), _rerun(10, 5, 5, 2, 0.68, 0.67, 3)]
    order = ranked(trials, spec)
    # #4's lucky 0.70 does not hold over 3 seeds (0.64); #5 (0.67 over 3) wins; the
    # single-seed configurations follow, the best of them (#2, 0.64) first.
    assert [c.first.number for c in order] == [5, 4, 2, 3, 1, 0]
    assert order[0].mean == pytest.approx(0.67) and order[0].n == 3
    assert order[0].sd == pytest.approx(0.01)
    assert order[0].named.number == 5  # named by its first trial, not its re-run #10


def _raced(draws: dict[int, list[float]]) -> list:
    """Trials of configurations (key: its number) with these draws, re-runs after."""
    trials = [_trial(config, values[0], config) for config, values in draws.items()]
    number = len(draws)
    for config, values in draws.items():
        for index, own in enumerate(values[1:], start=1):
            mean = statistics.fmean(values[:index + 1])
            trials.append(_rerun(number, config, config, index, own, mean, index + 1))
            number += 1
    return trials


def test_a_late_configuration_on_fewer_seeds_beats_an_early_survivor_and_a_lucky_draw() -> None:
    trials = _raced({0: [0.45, 0.55, 0.50, 0.52, 0.48], 1: [0.70, 0.60, 0.65, 0.68, 0.62],
                     2: [0.72, 0.64, 0.68], 3: [0.69], 4: [0.60], 5: [0.62], 6: [0.58]})
    order = ranked(trials, _spec())
    # Seed noise 0.00158 (pooled over #0, #1, #2), spread between configurations 0.00322:
    # #2's 0.68 over 3 seeds is estimated 0.6712, #3's single 0.69 only 0.6660, #1's 0.65
    # over 5 seeds 0.6471. Survivors-first would have answered #1.
    assert [c.first.number for c in order] == [2, 3, 1, 5, 4, 6, 0]
    assert estimates(order)[2] == pytest.approx(0.67117, abs=1e-5)
    assert estimates(order)[3] == pytest.approx(0.66603, abs=1e-5)
    assert (order[0].n, order[0].mean) == (3, pytest.approx(0.68))


def test_an_unmeasurable_spread_does_not_hand_the_answer_to_the_most_seeded() -> None:
    # Between-configuration variance 0.00047 lies below the seed noise's share (0.00097):
    # the method of moments says no spread. The floor (noise / 5 seeds) keeps the means
    # apart, and the baseline's 5 seeds do not win a tie.
    trials = _raced({0: [0.60, 0.70, 0.65, 0.62, 0.68], 1: [0.72, 0.66, 0.72],
                     2: [0.66], 3: [0.67]})
    order = ranked(trials, _spec())
    assert [c.first.number for c in order] == [1, 3, 2, 0]
    assert estimates(order)[1] == pytest.approx(0.68125, abs=1e-5)
    assert estimates(order)[0] == pytest.approx(0.66, abs=1e-5)
    assert (order[0].n, order[0].mean) == (3, pytest.approx(0.70))


def test_a_draw_far_beyond_the_seed_noise_wins_on_one_seed() -> None:
    trials = _raced({0: [0.50, 0.51, 0.49], 1: [0.65, 0.66, 0.64], 2: [0.71], 3: [0.60]})
    # Seed noise 0.0001 (sd 0.01): #2's 0.71 stands 6 sd above #1's 0.65 and keeps its lead.
    assert [c.first.number for c in ranked(trials, _spec())] == [2, 1, 3, 0]


def test_without_repeated_seeds_or_noise_configurations_rank_by_their_means() -> None:
    single = _raced({0: [0.50], 1: [0.66], 2: [0.64]})
    assert estimates(configurations(single)) == {0: 0.50, 1: 0.66, 2: 0.64}
    exact = _raced({0: [0.50, 0.50], 1: [0.66], 2: [0.70, 0.70, 0.70]})
    assert [c.first.number for c in ranked(exact, _spec())] == [2, 1, 0]
    assert estimates(configurations(exact))[1] == 0.66


def test_racing_is_on_by_default_from_twenty_trials_and_is_operational() -> None:
    assert parse_spec(tiny_study(budget={"n_trials": 19})).racing is None
    assert parse_spec(tiny_study(budget={"n_trials": 20})).racing == RacingSpec()
    off = parse_spec(tiny_study(seeds={"racing": False}, budget={"n_trials": 50}))
    assert off.racing is None
    small = parse_spec(tiny_study(seeds={"racing": {"max": 3}}, budget={"n_trials": 5}))
    assert small.racing == RacingSpec(max=3)
    # How many seeds leaders get does not change what a trial is: the study resumes.
    assert small.fingerprint() == parse_spec(tiny_study(budget={"n_trials": 5})).fingerprint()


def test_racing_needs_one_objective_and_ordered_seed_counts() -> None:
    two = [{"metric": "val_accuracy", "direction": "maximize"}, {"metric": "penalty/total"}]
    assert parse_spec(tiny_study(objective=two, budget={"n_trials": 40})).racing is None
    with pytest.raises(SpecError) as caught:
        parse_spec(tiny_study(objective=two, seeds={"racing": True}))
    assert caught.value.field == "seeds.racing"
    with pytest.raises(SpecError) as caught:
        parse_spec(tiny_study(seeds={"racing": {"min": 3, "max": 2}}))
    assert caught.value.field == "seeds.racing"


def test_bad_seed_settings_exit_2_and_write_nothing(workdir: Path) -> None:
    path = write_study(workdir / "s.yaml", tiny_study(seeds={"racing": {"top_fraction": 1.5}}))
    result = CliRunner().invoke(cli, ["run", str(path), "--no-progress"])
    assert result.exit_code == 2
    assert "seeds.racing.top_fraction" in result.output and "1.5" in result.output
    assert sorted(p.name for p in workdir.iterdir()) == ["s.yaml"]


def test_the_seed_settings_old_keys_still_load_with_one_warning_line(
        workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    from sweep.spec import load_spec

    old = tiny_study(budget={"n_trials": 20, "noise_seeds": 4}, report={"seeds": 6})
    old["search"] = dict(old["search"], seeds={"max": 3})
    with caplog.at_level("WARNING", logger="sweep"):
        spec = load_spec(write_study(workdir / "old.yaml", old))
    assert (spec.seeds.racing, spec.seeds.noise, spec.seeds.confirm) == (
        RacingSpec(max=3), 4, 6)
    assert [r.getMessage() for r in caplog.records] == [
        "old.yaml: search.seeds is now seeds.racing, budget.noise_seeds is now seeds.noise, "
        "report.seeds is now seeds.confirm; the old keys still load, and go in a later "
        "release"]
    # The same study whichever way it is written: a study created with the old keys resumes.
    new = tiny_study(budget={"n_trials": 20},
                     seeds={"racing": {"max": 3}, "noise": 4, "confirm": 6})
    assert parse_spec(new) == spec
    # An error in an old key names the key the file wrote; a key given at both places is
    # refused.
    with pytest.raises(SpecError) as caught:
        parse_spec(tiny_study(report={"seeds": 1}))
    assert caught.value.field == "report.seeds"
    with pytest.raises(SpecError) as caught:
        parse_spec(tiny_study(report={"seeds": 3}, seeds={"confirm": 4}))
    assert (caught.value.field, str(caught.value)) == (
        "report.seeds", "report.seeds: is also given as seeds.confirm, its new name: keep "
        "only seeds.confirm (got 3)")


def _draws(trials: list, origin: int) -> list[float]:
    """Own values of the configuration first trained by trial ``origin``: it and its
    re-runs (with the baseline, its seed replicates too). Workers that ran at once may
    each have trained the same placement as a configuration of its own: those are not
    its seeds."""
    first = next(t for t in trials if t.number == origin)
    kind = first.user_attrs.get("baseline")
    return [t.user_attrs.get("seed_value", t.values[0]) for t in trials
            if t.state == COMPLETE and "duplicate_of" not in t.user_attrs and (
                t.number == origin or t.user_attrs.get("seed_of") == origin
                or (kind is not None and t.user_attrs.get("baseline") == kind))]


def _raced_study(name: str, n_trials: int) -> dict:
    study = tiny_study(name=name, budget={"n_trials": n_trials})
    study["search"] = dict(study["search"], baselines=["none"])
    study["seeds"] = {"racing": {"min": 1, "max": 3, "top_fraction": 0.5}}
    return study


def _check_raced(trials: list, n_trials: int) -> None:
    """What every raced study holds, however its workers interleaved."""
    from sweep.storage.budget import used_budget

    assert used_budget(trials) == n_trials
    reruns = [t for t in trials if "seed_of" in t.user_attrs]
    assert reruns, "no configuration got a further seed"
    by_number = {t.number: t for t in trials}
    pairs = [(t.user_attrs["seed_of"], t.user_attrs["seed_index"]) for t in reruns]
    assert len(pairs) == len(set(pairs)), f"a seed queued twice: {pairs}"
    for trial in reruns:
        first = by_number[trial.user_attrs["seed_of"]]
        assert trial.user_attrs["placement"] == first.user_attrs["placement"]
        assert trial.params == first.params
        assert 1 <= trial.user_attrs["seed_index"] <= 2
        assert trial.user_attrs["seed"] == {1: 759045492, 2: 776195886}[
            trial.user_attrs["seed_index"]]
        if trial.state == COMPLETE:
            # Its value is its configuration's mean over the seeds finished by then.
            count = trial.user_attrs["seeds"]
            assert 2 <= count <= 3
            assert trial.user_attrs["seed_value"] == pytest.approx(
                trial.user_attrs["final/val_accuracy"])
    for origin in {t.user_attrs["seed_of"] for t in reruns}:
        assert len(_draws(trials, origin)) <= 3


def test_a_raced_study_ranks_by_the_mean_over_seeds(
        workdir: Path, storage_url: str, tracking_uri: str) -> None:
    from mlflow.tracking import MlflowClient

    import sweep

    path = write_study(workdir / "race.yaml", _raced_study("race", 9))
    result = CliRunner().invoke(cli, ["run", str(path), "--storage", storage_url,
                                      "--tracking-uri", tracking_uri, "--no-progress"])
    assert result.exit_code == 0, result.output
    trials = optuna.load_study(study_name="race", storage=storage_url).trials
    _check_raced(trials, 9)
    # What `sweep run` and `validate` said the budget buys is what one worker spent it on.
    trained = [t for t in trials if "duplicate_of" not in t.user_attrs]
    reruns = [t for t in trained if "seed_of" in t.user_attrs]
    assert budget_plan(parse_spec(_raced_study("race", 9))) == (
        len(trained) - len(reruns), len(reruns))
    assert (f"budget: 9 trials explore about {len(trained) - len(reruns)} configurations"
            in result.output)
    last = max((t for t in trials if "seed_of" in t.user_attrs and t.state == COMPLETE),
               key=lambda t: t.number)
    draws = _draws([t for t in trials if t.number <= last.number],
                   last.user_attrs["seed_of"])
    assert last.values[0] == pytest.approx(statistics.mean(draws))

    best = CliRunner().invoke(cli, ["best", "race", "--storage", storage_url, "--top", "3",
                                    "--format", "json"])
    assert best.exit_code == 0, best.output
    rows = json.loads(best.output)
    top = rows[0]
    exported = CliRunner().invoke(cli, ["export", "race", "--storage", storage_url,
                                        "--format", "json"])
    by_number = {row["number"]: row for row in json.loads(exported.output)}
    for trial in trials:
        row = by_number[trial.number]
        assert (row["seed_of"], row["seeds"]) == (trial.user_attrs.get("seed_of"),
                                                  trial.user_attrs.get("seeds"))
        if "seed_of" in trial.user_attrs:  # trials and configurations apart
            assert row["configuration"] == f"#{trial.user_attrs['seed_of']}"
            assert row["seed_index"] == trial.user_attrs["seed_index"]
    # Ranked by the mean shrunk by the seed noise, which each row carries.
    assert [r["estimate"] for r in rows] == sorted((r["estimate"] for r in rows), reverse=True)
    # A configuration is named by its first trial, never by a re-run.
    shown = next(t for t in trials if t.number == top["number"])
    assert "seed_of" not in shown.user_attrs
    origin = shown.number
    assert top["seeds"] == len(_draws(trials, origin))
    assert top["value"] == pytest.approx(statistics.mean(_draws(trials, origin)))
    # The top may stand on one seed: a draw far above the others (the seed noise, not the
    # most-seeded configuration, decides).
    assert top["sd"] == (None if top["seeds"] == 1 else
                         pytest.approx(statistics.stdev(_draws(trials, origin))))
    first_baseline = min(t.number for t in trials if t.user_attrs.get("baseline") == "none")
    baseline = _draws(trials, first_baseline)
    assert top["vs_baseline"] == pytest.approx(top["value"] - statistics.mean(baseline))
    loaded = sweep.load("race", storage=storage_url, tracking_uri=tracking_uri).best
    assert loaded is not None and (loaded.trial, loaded.seeds) == (top["number"], top["seeds"])
    assert loaded.value == pytest.approx(top["value"])

    status = CliRunner().invoke(cli, ["status", "race", "--storage", storage_url,
                                      "--format", "json"])
    doc = json.loads(status.output)
    racing = doc["racing"]
    assert (doc["best_trial"], doc["best_seeds"]) == (top["number"], top["seeds"])
    assert doc["best_value"] == pytest.approx(top["value"])
    reruns = [t for t in trials if "seed_of" in t.user_attrs]
    assert (racing["reruns"], racing["finished"], racing["best_seeds"]) == (
        len(reruns), len(reruns), top["seeds"])
    listed = CliRunner().invoke(cli, ["list", "--storage", storage_url, "--format", "json"])
    assert json.loads(listed.output)[0]["best_value"] == pytest.approx(top["value"])
    table = CliRunner().invoke(cli, ["best", "race", "--storage", storage_url, "--top", "5"])
    assert "mean over seeds" in table.output and "±" in table.output  # the raced rows

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("race")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string="tags.`sweep.seed_of` LIKE '#%'")
    assert len(runs) == sum("seed_of" in t.user_attrs for t in trials)
    for run in runs:
        number = int(run.data.tags["optuna.trial_number"])
        trial = next(t for t in trials if t.number == number)
        assert run.info.run_name == (f"#{number} = #{trial.user_attrs['seed_of']} seed "
                                     f"{trial.user_attrs['seed_index'] + 1}")
        assert run.data.tags["sweep.configuration"] == f"#{trial.user_attrs['seed_of']}"
        assert "seeds/mean" not in run.data.metrics  # its own draw; the figures are below
    # Each configuration's figures over seeds on the run that names it, all its runs
    # tagged with its name (what the printed link groups by).
    tagged = client.search_runs([experiment.experiment_id],
                                filter_string="metrics.`seeds/n` > 0")
    shown = {run.data.tags["sweep.configuration"]: run.data.metrics for run in tagged}
    top_metrics = shown[f"#{top['number']}"]
    assert (top_metrics["seeds/mean"], top_metrics["seeds/n"]) == (
        pytest.approx(top["value"]), top["seeds"])
    study_run = client.search_runs([experiment.experiment_id],
                                   filter_string="tags.`sweep.role` = 'study'")[0]
    figure = (f"{top['value']:.4f} ± {top['sd']:.4f} over {top['seeds']} seeds"
              if top["seeds"] > 1 else f"{top['value']:.4f}, 1 seed")
    note = study_run.data.tags["mlflow.note.content"]
    assert f"configuration #{top['number']}" in note and figure in note

    report = CliRunner().invoke(cli, ["report", "race", "--storage", storage_url,
                                      "--tracking-uri", tracking_uri, "--no-confirm",
                                      "-o", str(workdir / "report")])
    assert report.exit_code == 0, report.output
    markdown = (workdir / "report" / "report.md").read_text()
    assert f"Best configuration: #{top['number']}, val_accuracy = {figure}" in markdown
    assert f"#{top['number']}" in markdown.split("\n- ")[1]  # the verdict comes first
    study_run = client.get_run(study_run.info.run_id)
    assert study_run.data.metrics["best/seeds/n"] == top["seeds"]
    assert study_run.data.metrics["best/val_accuracy"] == pytest.approx(top["value"])


@pytest.mark.timeout(900)
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_workers_share_the_racing(workdir: Path, database: str,
                                  request: pytest.FixtureRequest, tracking_uri: str) -> None:
    """Three workers at once, on the default SQLite file and on PostgreSQL: every extra
    seed is queued once (the racing lock), any worker runs it, and the budget stays
    exact."""
    url = f"sqlite:///{workdir / 'sweep.db'}" if database == "sqlite" else \
        request.getfixturevalue("postgres_server_url")
    name = f"race-{database}"
    path = write_study(workdir / "race.yaml", _raced_study(name, 12))
    created = subprocess.run(
        [sys.executable, "-m", "sweep", "create", str(path), "--storage", url,
         "--tracking-uri", tracking_uri], capture_output=True, text=True)
    assert created.returncode == 0, created.stderr
    workers = [subprocess.Popen(
        [sys.executable, "-m", "sweep", "worker", name, "--storage", url,
         "--tracking-uri", tracking_uri, "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for worker in workers:
        _, err = worker.communicate(timeout=800)
        assert worker.returncode == 0, err
    trials = optuna.load_study(study_name=name, storage=url).trials
    _check_raced(trials, 12)
    ran_reruns = {t.user_attrs["worker"] for t in trials if "seed_of" in t.user_attrs}
    assert ran_reruns  # recorded like any trial's


def test_the_demo_budget_explores_at_least_twelve_configurations() -> None:
    from sweep.spec import load_spec

    demo = load_spec(Path(__file__).resolve().parents[2] / "studies" / "digits.yaml")
    # 20 trials: 12 configurations (the 2 baselines among them), 8 re-runs.
    assert budget_plan(demo) == (12, 8)
    # No sampled placement can be the no-regularization baseline again: such a duplicate
    # takes a trial and explores nothing.
    assert "none" not in demo.search.placement.choices
