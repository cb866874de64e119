"""Season replay: exactly one prediction per slate player, system and version; a rerun changes
nothing; a run killed half way and run again gives the same rows as one that was never stopped."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

import settings
from contracts import DATA_CHECKS_SCHEMA, PREDICTION_GRADES_SCHEMA, PREDICTIONS_SCHEMA, SYSTEMS
from features.definitions import FEATURE_STORE_SCHEMA
from live import daily
from live.replay import ReplayConfig, isolated, replay
from registry import systems
from sources.base import Sources
from sources.files import FileResults
from sources.lines import DropFolderLines
from tests.conftest import SEASON_2024_25
from warehouse import connect

START, END = dt.date(2024, 12, 2), dt.date(2024, 12, 4)
SEASON_2023_24 = settings.BOX_SCORES_DEFAULT / "player_logs_2023-24.csv.gz"
TABLES = (PREDICTIONS_SCHEMA, PREDICTION_GRADES_SCHEMA, DATA_CHECKS_SCHEMA, FEATURE_STORE_SCHEMA)


def config(home: Path) -> ReplayConfig:
    # two seasons of files: the replay trains on 2023-10 .. 2024-12-01 and walks three days
    sources = Sources(FileResults([SEASON_2023_24, SEASON_2024_25]), DropFolderLines(settings.LINES_DEFAULT))
    # no weekly retrain in three days (tests/integration/test_retrain.py covers retraining)
    return ReplayConfig(START, END, home, sources, retrain_every=0, gate_days=5, train_years=1)


def tables(home: Path) -> dict[str, pd.DataFrame]:
    with isolated(home) as url:
        store = connect(url)
        return {schema.name: store.read(schema) for schema in TABLES}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    home = tmp_path_factory.mktemp("replay")
    return home, replay(config(home), progress=False)


@pytest.mark.slow
def test_one_prediction_per_slate_player_system_and_version(uninterrupted) -> None:
    home, report = uninterrupted
    found = tables(home)
    predictions = found[PREDICTIONS_SCHEMA.name]
    assert not predictions.duplicated(list(PREDICTIONS_SCHEMA.key)).any()
    assert set(predictions["game_date"]) == {START, START + dt.timedelta(days=1), END}
    for _, evening in predictions.groupby("game_date"):
        # every system of the table predicted every slate player of the evening, once (one that abstains:
        # every slate player with a line)
        players = evening.groupby("system")["player_id"].apply(frozenset)
        everyone = players[[s for s in SYSTEMS if not systems.module(s).ABSTAINS]]
        assert set(players.index) == set(SYSTEMS) and everyone.nunique() == 1
        assert all(players[s] <= everyone.iloc[0] for s in SYSTEMS)
        assert len(evening) == sum(len(p) for p in players)
    # the range's results were graded the day after; every system has live figures
    assert set(found[PREDICTION_GRADES_SCHEMA.name]["game_date"]) == {START, START + dt.timedelta(days=1), END}
    assert report.systems and all(v["graded"] > 0 and v["live_mae"] > 0 for v in report.systems.values())
    assert 0.8 < report.coverage <= 1
    # every system is scored against the evenings' lines as the backtest scores them (three evenings: loose bounds)
    for values in report.systems.values():
        assert values["line_mae"] > 0 and values["model_mae_on_lines"] > 0
        assert 0.15 < values["brier_graded"] < 0.35 and 0 <= values["ece_graded"] < 0.5
    assert "brier_graded" in report.render()


@pytest.mark.slow
def test_the_seasons_plots_are_drawn_at_the_end(uninterrupted) -> None:
    from mlflow.tracking import MlflowClient

    from monitoring.tracking import season_run

    home, _ = uninterrupted
    with isolated(home):  # the evenings log their metrics only; the replay draws the plots once
        client = MlflowClient()
        run_id, _ = season_run(client, "2024-25", START)
        drawn = {a.path for a in client.list_artifacts(run_id, "plots")}
    assert {"plots/rolling_mae.png", "plots/p_over_reliability.png"} <= drawn


@pytest.mark.slow
def test_a_second_replay_changes_nothing(uninterrupted) -> None:
    home, _ = uninterrupted
    before = tables(home)
    replay(config(home), progress=False)
    for name, frame in tables(home).items():
        pd.testing.assert_frame_equal(frame, before[name], obj=name)


@pytest.mark.slow
def test_a_killed_replay_run_again_gives_the_same_rows(uninterrupted, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    home, _ = uninterrupted
    original = daily.monitor

    def killed_on_the_second_evening(cfg, *args, **kwargs):  # after that evening's predictions were written
        if cfg.date == START + dt.timedelta(days=1):
            raise KeyboardInterrupt("killed")
        return original(cfg, *args, **kwargs)

    monkeypatch.setattr(daily, "monitor", killed_on_the_second_evening)
    with pytest.raises(KeyboardInterrupt):
        replay(config(tmp_path), progress=False)
    monkeypatch.setattr(daily, "monitor", original)
    replay(config(tmp_path), progress=False)
    expected, resumed = tables(home), tables(tmp_path)
    for name in (PREDICTIONS_SCHEMA.name, FEATURE_STORE_SCHEMA.name, DATA_CHECKS_SCHEMA.name):
        # model versions are numbered per registry: both registries numbered the same retrains alike
        pd.testing.assert_frame_equal(resumed[name], expected[name], obj=name)
