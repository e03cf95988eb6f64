"""sweep.workers.objective: a trial that samples a placement another trial is still
training waits for it and reuses its figures, so the same model is never trained twice
side by side (nor raced twice); read back through Optuna on a real SQLite study."""

from __future__ import annotations

import threading
from pathlib import Path

from conftest import tiny_study
from optuna.distributions import CategoricalDistribution

from sweep.search.grouping import configurations
from sweep.spec import parse_spec
from sweep.storage.connect import open_storage
from sweep.study.create import create_or_resume
from sweep.workers.claim import claim

CHOICE = {"placement": CategoricalDistribution(("none", "first", "all"))}


def test_a_placement_sampled_while_an_equal_one_trains_waits_and_is_a_duplicate(
        tmp_path: Path) -> None:
    spec = parse_spec(tiny_study(name="twins", budget={"n_trials": 4}))
    study, _ = create_or_resume(spec, open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    first = study.ask(CHOICE)  # worker 1: no regularization, training
    assert claim(first, {}, {}, {"placement": {}}) is None
    second = study.ask(CHOICE)  # worker 2 samples the same model meanwhile
    waiting = threading.Event()
    found: list[object] = []
    worker = threading.Thread(target=lambda: found.append(claim(
        second, {}, {}, {"placement": {}}, on_wait=lambda number: (
            found.append(number), waiting.set()), poll=0.05)))
    worker.start()
    assert waiting.wait(30)
    assert found == [first.number]  # waiting for trial 0, its placement not yet claimed
    assert "placement" not in study.get_trials()[second.number].user_attrs
    first.set_user_attr("final/val_accuracy", 0.7)
    study.tell(first, 0.7)
    worker.join(30)
    assert not worker.is_alive()
    assert found[1].key == first.number  # its figures are reused: trained once
    assert study.get_trials()[second.number].user_attrs["placement"] == {}


def test_a_placement_claimed_by_nobody_is_trained_and_different_ones_do_not_wait(
        tmp_path: Path) -> None:
    spec = parse_spec(tiny_study(name="apart", budget={"n_trials": 4}))
    study, _ = create_or_resume(spec, open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    first = study.ask(CHOICE)
    assert claim(first, {}, {}, {"placement": {}}) is None
    other = study.ask(CHOICE)
    regularized = {"dense": {"kernel": {"l2": 0.001}}}
    assert claim(other, regularized, {}, {"placement": regularized},
                 on_wait=lambda number: (_ for _ in ()).throw(AssertionError(number))) is None
    study.tell(first, 0.7)
    study.tell(other, 0.6)
    # A third trial of the finished placement reuses it; marked a duplicate, it is no
    # configuration of its own that seed racing could race again.
    third = study.ask(CHOICE)
    assert claim(third, {}, {}, {"placement": {}}).key == first.number
    third.set_user_attr("duplicate_of", first.number)
    study.tell(third, 0.7)
    assert [c.key for c in configurations(study.get_trials())] == [0, 1]


def test_a_duplicate_of_a_raced_configuration_reuses_its_mean_over_seeds(
        tmp_path: Path) -> None:
    spec = parse_spec(tiny_study(name="raced", budget={"n_trials": 6}))
    study, _ = create_or_resume(spec, open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    first = study.ask(CHOICE)
    assert claim(first, {}, {}, {"placement": {}}) is None
    first.set_user_attr("final/val_accuracy", 0.7)
    study.tell(first, 0.7)
    # Its re-run on a further seed: its own draw 0.5, told as the mean 0.6.
    study.enqueue_trial({}, user_attrs={"placement": {}, "seed_of": first.number,
                                        "seed_index": 1})
    rerun = study.ask(CHOICE)
    rerun.set_user_attr("seed_value", 0.5)
    rerun.set_user_attr("final/val_accuracy", 0.5)
    study.tell(rerun, 0.6)
    found = claim(study.ask(CHOICE), {}, {}, {"placement": {}})
    # The configuration (named by its first trial), its mean and its mean final figures.
    assert (found.key, found.named.number, found.n) == (0, 0, 2)
    assert found.mean == 0.6 and found.final_means() == {"final/val_accuracy": 0.6}


def test_the_same_placement_at_another_searched_value_is_another_configuration(
        tmp_path: Path) -> None:
    spec = parse_spec(tiny_study(name="settings", budget={"n_trials": 4}))
    study, _ = create_or_resume(spec, open_storage(f"sqlite:///{tmp_path / 's.db'}"))
    fast, slow = {"train/learning_rate": 0.01}, {"train/learning_rate": 0.001}
    first = study.ask(CHOICE)
    assert claim(first, {}, fast, {"placement": {}, "settings": fast}) is None
    study.tell(first, 0.7)
    other = study.ask(CHOICE)  # no regularization too, at another learning rate: trains
    assert claim(other, {}, slow, {"placement": {}, "settings": slow}) is None
    study.tell(other, 0.6)
    again = study.ask(CHOICE)  # the first one's values again: reuses its figures
    assert claim(again, {}, fast, {"placement": {}, "settings": fast}).key == first.number
    again.set_user_attr("duplicate_of", first.number)
    study.tell(again, 0.7)
    assert [(c.key, c.settings) for c in configurations(study.get_trials())] == [
        (0, fast), (1, slow)]
