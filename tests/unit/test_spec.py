"""Experiment specs: the shipped files load, and every bad value stops with the file, key and value."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from contracts import SYSTEMS
from registry import systems
from training.spec import ConfigError, load_spec


def test_the_default_spec_runs_every_system_of_the_table_in_order() -> None:
    spec = load_spec()
    assert tuple(spec.systems) == SYSTEMS
    assert (spec.n_trials, spec.timeout, spec.seed, spec.val_fraction) == (12, 300.0, 42, 0.2)
    assert spec.backtest_start == dt.date(2024, 10, 22) <= spec.backtest_end
    for name in systems.tuned_systems():  # a search space per tuned system, its fixed values inside it
        space, fixed = spec.systems[name].search_space, spec.systems[name].params
        assert space and spec.tuned(name)
        for key, param in space.items():
            assert param.low <= fixed[key] <= param.high, (name, key)


def test_quick_changes_only_what_it_names_of_its_base() -> None:
    quick, default = load_spec("experiments/quick.yaml"), load_spec("experiments/default.yaml")
    assert (quick.n_trials, quick.end_date, quick.test_start) == (2, dt.date(2025, 2, 15), dt.date(2025, 1, 1))
    assert quick.systems == default.systems and quick.seed == default.seed


def test_overrides_replace_single_settings_and_keep_the_rest() -> None:
    spec = load_spec().override(n_trials=0, end_date=dt.date(2025, 1, 31), systems=("xgboost_v1", "ensemble_v1"),
                                seed=None)
    assert (spec.n_trials, spec.end_date, spec.seed, tuple(spec.systems)) == (
        0, dt.date(2025, 1, 31), 42, ("xgboost_v1", "ensemble_v1"))
    assert not spec.tuned("xgboost_v1")  # n_trials 0: fit with the spec's fixed parameters
    assert spec.raw["tuning"]["n_trials"] == 0  # what is logged is what ran


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "x.yaml"
    path.write_text(f"base: {Path('experiments/default.yaml').resolve()}\n{text}")
    return path


@pytest.mark.parametrize(("text", "message"), [
    ("systems: {xgboost_v1: {search_space: {eta: {type: float, low: a, high: 0.2}}}}",
     "systems.xgboost_v1.search_space.eta.low is 'a', expected a number"),
    ("systems: {xgboost_v1: {search_space: {eta: {type: float, low: 0.3, high: 0.2}}}}",
     "systems.xgboost_v1.search_space.eta.high is 0.2, expected a number above low (0.3)"),
    ("systems: {xgboost_v1: {search_space: {max_depth: {type: int, low: 3.5, high: 8}}}}",
     "systems.xgboost_v1.search_space.max_depth.low is 3.5, expected an integer"),
    ("systems: {xgboost_v1: {search_space: {eta: {type: normal}}}}",
     "systems.xgboost_v1.search_space.eta.type is 'normal', expected one of float, int, categorical"),
    ("systems: {lightgbm: {}}", f"systems.lightgbm is not a system; the systems are {', '.join(SYSTEMS)}"),
    ("systems: {moving_average: {tune: true}}",
     "systems.moving_average.tune is True, expected false: moving_average has nothing to tune"),
    ("systems: {catboost_v8: {search_space: null}}",
     "systems.catboost_v8.search_space is None, expected a search space (or tune: false)"),
    ("data: {val_fraction: 1.5}", "data.val_fraction is 1.5, expected a number between 0 and 1"),
    ("data: {test_start: 2025-13-01}", "data.test_start is '2025-13-01', expected a date YYYY-MM-DD or null"),
    ("tuning: {n_trials: -1}", "tuning.n_trials is -1, expected an integer of at least 0"),
    ("tuning: {trials: 3}", "tuning.trials is not a setting; tuning takes n_trials, timeout"),
    ("backtest: {start_date: 2025-02-01, end_date: 2025-01-01}",
     "backtest.start_date is '2025-02-01', expected a date on or before backtest.end_date (2025-01-01)"),
])
def test_a_bad_value_names_the_file_the_key_and_the_value(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_spec(path)
    assert str(error.value) == f"{path}: {message}"


def test_only_a_combination_of_systems_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "only.yaml"
    path.write_text(yaml.safe_dump({**yaml.safe_load(Path("experiments/default.yaml").read_text()),
                                    "systems": {"ensemble_v1": {}}}))
    with pytest.raises(ConfigError, match="systems is 'ensemble_v1', expected at least one system that is not a"):
        load_spec(path)


def test_override_errors_name_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"^experiments/default.yaml with overrides: tuning.n_trials is -2, expected"):
        load_spec().override(n_trials=-2)
    with pytest.raises(ConfigError, match="^systems includes 'lightgbm'; experiments/default.yaml has moving_average"):
        load_spec().override(systems=("xgboost_v1", "lightgbm"))


def test_missing_file_and_bad_yaml_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="^experiment is 'experiments/nope.yaml': no such spec file$"):
        load_spec("experiments/nope.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: {start_date: [\n")
    with pytest.raises(ConfigError, match=r"broken.yaml line \d+: not valid YAML"):
        load_spec(broken)
    loop = tmp_path / "loop.yaml"
    loop.write_text(f"base: {loop}\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_spec(loop)
