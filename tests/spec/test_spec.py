from __future__ import annotations

from pathlib import Path

import pytest
from conftest import tiny_study, write_study
from pydantic import ValidationError

from sweep.errors import SpecError
from sweep.spec import CoefficientRange, load_spec, parse_spec

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "studies").glob("*.yaml")))
def test_shipped_study_files_parse(name: str) -> None:
    spec = load_spec(REPO / "studies" / name)
    assert spec.name
    assert spec.primary.metric.startswith("val_")


def test_tiny_study_is_frozen_and_typed() -> None:
    spec = parse_spec(tiny_study())
    assert spec.search.kinds == ("l1", "l2")
    assert isinstance(spec.search.l2, CoefficientRange)
    assert spec.primary.resolved_direction == "maximize"
    with pytest.raises(ValidationError, match="frozen_instance"):
        spec.seed = 3  # type: ignore[misc]


def test_plain_number_fixes_a_coefficient_and_choices_list() -> None:
    search = dict(tiny_study()["search"], l1=1.0e-4, l2={"choices": [1e-4, 1e-3]})
    spec = parse_spec(tiny_study(search=search))
    assert spec.search.l1 == 1.0e-4
    assert spec.search.l2.choices == (1e-4, 1e-3)


def test_pruner_given_by_name_or_mapping() -> None:
    assert parse_spec(tiny_study(pruner="median")).pruner.name == "median"
    spec = parse_spec(tiny_study(pruner={"name": "hyperband", "warmup_epochs": 2}))
    assert (spec.pruner.name, spec.pruner.warmup_epochs) == ("hyperband", 2)


def test_fingerprint_ignores_budget_only() -> None:
    base = parse_spec(tiny_study())
    assert base.fingerprint() == parse_spec(tiny_study(budget={"n_trials": 99})).fingerprint()
    other = tiny_study()
    other["train"]["epochs"] = 3
    assert base.fingerprint() != parse_spec(other).fingerprint()


def _with(path: str, value: object) -> dict:
    """The tiny study with the value at a dotted path replaced (``...`` deletes it)."""
    study = tiny_study()
    node = study
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[key]
    if value is ...:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return study


BAD = [
    ("colour", "blue", "colour", "unknown key"),
    ("train.epochs", 0, "train.epochs", "0"),
    ("train.epochs", "ten", "train.epochs", "ten"),
    ("train.optimizer", "adamax", "train.optimizer", "adamax"),
    ("search.l2", {"low": 0.1, "high": 0.01}, "search.l2", "low must be <= high"),
    ("search.l1", {"low": 0.0, "high": 0.01, "log": True}, "search.l1", "log"),
    ("search.targets", ["kernel", "weights"], "search.targets", "weights"),
    ("search.coefficients", "each", "search.coefficients", "each"),
    ("search.placement", {"choices": ["all"], "mask": True}, "search.placement", "exactly one"),
    ("search.placement.extra", 1, "search.placement.extra", "unknown key"),
    ("sampler", "bayes", "sampler", "bayes"),
    ("pruner", "early", "pruner.name", "early"),
    ("data.source", "mnist", "data", "mnist"),
    ("data.validation_split", 1.5, "data.validation_split", "1.5"),
    ("objective.metric", "accuracy", "objective.metric", "val_"),
    ("objective.metric", "val_loss", "objective.metric", "penalty"),
    ("objective.direction", "minimize", "objective", "contradicts"),
    ("budget.n_trials", -1, "budget.n_trials", "-1"),
    ("name", "has space", "name", "has space"),
    ("model.builder", "no_colon", "model.builder", "package.module:function"),
    ("model.layers", ..., "model", "exactly one of layers, builder, file"),
    ("search.l2", "x", "search.l2", "'x'"),
    ("search.l1", {"low": -1, "high": 0.01}, "search.l1.low", "-1"),
    ("data", ..., "data", "required"),
]


@pytest.mark.parametrize(("path", "value", "field", "fragment"), BAD,
                         ids=[f"{p}={v}" for p, v, *_ in BAD])
def test_bad_values_name_the_field_and_the_value(path, value, field, fragment) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(_with(path, value))
    message = str(caught.value)
    assert field in message
    assert fragment in message


def test_yaml_errors_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    with pytest.raises(SpecError, match="mapping"):
        load_spec(listed)


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    evil = tmp_path / "evil.yaml"
    evil.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(evil)


def test_round_trip_through_canonical_form(tmp_path: Path) -> None:
    spec = load_spec(write_study(tmp_path / "s.yaml", tiny_study()))
    assert parse_spec(spec.canonical()) == spec


def test_public_api_is_re_exported_lazily() -> None:
    import subprocess
    import sys

    code = ("import sys, sweep\n"
            "assert not any(m in sys.modules for m in ('optuna', 'tensorflow', 'mlflow'))\n"
            "assert sweep.load_spec and sweep.SpecError and sweep.Study and sweep.join\n"
            "print(sorted(sweep.__all__) == sweep.__all__)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"


@pytest.mark.parametrize(("value", "seconds"), [
    (90, 90.0), (2.5, 2.5), ("45", 45.0), ("45s", 45.0), ("90m", 5400.0), ("8h", 28800.0),
    ("1h30m", 5400.0), (" 2 h ", 7200.0)])
def test_durations_in_seconds_or_with_units(value, seconds) -> None:
    spec = parse_spec(tiny_study(budget={"n_trials": 3, "wall_time": value,
                                         "trial_timeout": value}))
    assert spec.budget.wall_time == seconds
    assert spec.budget.trial_timeout == seconds


@pytest.mark.parametrize("value", ["", "soon", "0", 0, -5, "90x", True, "h"])
def test_bad_durations_name_the_field(value) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(tiny_study(budget={"n_trials": 3, "trial_timeout": value}))
    assert caught.value.field == "budget.trial_timeout"
    assert repr(value) in str(caught.value)


def test_budget_limits_default_and_stay_operational() -> None:
    spec = parse_spec(tiny_study())
    assert (spec.budget.wall_time, spec.budget.trial_timeout, spec.budget.max_failures) == \
        (None, None, 10)
    assert (spec.workers.checkpoint_dir, spec.workers.checkpoint_every) == (None, "auto")
    limited = parse_spec(tiny_study(budget={"n_trials": 3, "max_failures": 4,
                                            "wall_time": "2h"},
                                    workers={"checkpoint_every": 5}))
    assert limited.fingerprint() == spec.fingerprint()  # resuming may change them


@pytest.mark.parametrize(("text", "field", "words"), [
    ("name: a\nname: b\n", "STUDY_FILE", "key 'name' appears twice in one mapping (line 2)"),
    ("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
     + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 6))
     + "name: lol\n", "STUDY_FILE",
     "holds more than 10000 values once its YAML aliases are expanded"),
    ("name: a\nbig: [" + ", ".join(["1"] * 20_000) + "]\n", "STUDY_FILE",
     "holds more than 10000 values (got"),
])
def test_study_files_that_yaml_accepts_but_we_refuse(tmp_path: Path, text: str, field: str,
                                                      words: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as raised:
        load_spec(path)
    assert raised.value.field == field and words in str(raised.value)


def test_messages_name_keys_of_the_file_not_pydantic_internals(tmp_path: Path) -> None:
    empty = write_study(tmp_path / "s.yaml", tiny_study(objective=None))
    empty.write_text(empty.read_text() + "objective:\n")
    with pytest.raises(SpecError) as raised:
        load_spec(empty)  # `objective:` left empty
    assert raised.value.field == "objective" and "required: a mapping such as" in \
        str(raised.value)
    cases = [({"data": dict(tiny_study()["data"], validation_split=2)},
              "data.validation_split", "less than 1"),
             ({"search": dict(tiny_study()["search"], placement=5)}, "search.placement",
              "must be a mapping of keys")]
    for changes, field, words in cases:
        with pytest.raises(SpecError) as raised:
            parse_spec(tiny_study(**changes))
        assert raised.value.field == field and words in str(raised.value), str(raised.value)
        assert "Spec" not in str(raised.value) and "synthetic." not in str(raised.value)


def test_reading_the_spec_module_warns_about_nothing() -> None:
    """Every command imports it: a warning here would be printed by every command."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-W", "error", "-c", "import sweep.spec"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(("pruner", "epochs", "warmup"), [
    ("median", 12, 6), ("median_per_placement", 12, 4), ("hyperband", 12, 4),
    ("successive_halving", 2, 1), ({"name": "median", "warmup_epochs": 0}, 12, 0),
    ("none", 12, 1)])
def test_a_named_pruner_waits_a_share_of_the_epochs_unless_told(
        pruner: object, epochs: int, warmup: int) -> None:
    train = dict(tiny_study()["train"], epochs=epochs)
    assert parse_spec(tiny_study(pruner=pruner, train=train)).pruner.warmup_epochs == warmup


@pytest.mark.parametrize(("budget", "field", "message"), [
    ({"wall_time": 1.0e12}, "budget.wall_time",
     "budget.wall_time: must be at most 366 days (31622400 s) (got 1000000000000.0)"),
    ({"trial_timeout": "9000h"}, "budget.trial_timeout",
     "budget.trial_timeout: must be at most 366 days (31622400 s) (got '9000h')"),
    ({"wall_time": "0"}, "budget.wall_time",
     "budget.wall_time: must be a positive duration (got '0')"),
    ({"max_failures": True}, "budget.max_failures",
     "budget.max_failures: must be a number, not true/false (got True)"),
    ({"stop_within_noise": "yes"}, "budget.stop_within_noise",
     "budget.stop_within_noise: must be true or false (got 'yes')"),
])
def test_durations_are_bounded_and_kinds_strict(budget: dict, field: str, message: str) -> None:
    with pytest.raises(SpecError) as raised:
        parse_spec(tiny_study(budget={"n_trials": 3, **budget}))
    assert (raised.value.field, str(raised.value)) == (field, message)


def test_nested_booleans_are_strict_too() -> None:
    search = dict(tiny_study()["search"], l2={"low": 1e-5, "high": 1e-2, "log": "no"})
    with pytest.raises(SpecError) as raised:
        parse_spec(tiny_study(search=search))
    assert str(raised.value) == "search.l2.log: must be true or false (got 'no')"


def test_merge_keys_load_as_yaml_1_1_defines_them(tmp_path: Path) -> None:
    path = write_study(tmp_path / "s.yaml", tiny_study(train=None))
    path.write_text(path.read_text().replace("train: null\n", "") + (
        "train:\n  <<: &fast {epochs: 2, batch_size: 16, learning_rate: 0.01}\n"
        "  epochs: 1\n"))
    spec = load_spec(path)
    assert (spec.train.epochs, spec.train.batch_size, spec.train.learning_rate) == (1, 16, 0.01)


def test_a_large_study_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("name: big\nlist:\n" + "  - 1\n" * 700_000)
    with pytest.raises(SpecError) as raised:  # by its size: parsing it took 45 s
        load_spec(path)
    assert str(raised.value) == (f"STUDY_FILE: is 4,200,016 bytes; a study file is at most "
                                 f"256 KB (data goes in files it names) (got '{path}')")


def test_batches_per_compiled_call_are_operational() -> None:
    # The same batches in the same order whatever the count: a study resumes across it.
    auto = parse_spec(tiny_study())
    one = parse_spec(tiny_study(train=dict(tiny_study()["train"], steps_per_execution=1)))
    assert auto.train.steps_per_execution == "auto" and one.train.steps_per_execution == 1
    assert auto.fingerprint() == one.fingerprint()
