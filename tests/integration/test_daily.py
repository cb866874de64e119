"""The daily job over consecutive real game days, results coming through the fake stats.nba.com."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

import settings
from contracts import (
    ALERTS_SCHEMA,
    BOX_SCORES_SCHEMA,
    DATA_CHECKS_SCHEMA,
    DATA_SYSTEM,
    MONITORING_EXPERIMENT,
    MONITORING_SCHEMA,
    PREDICTION_GRADES_SCHEMA,
    PREDICTIONS_SCHEMA,
    PROP_LINES_SCHEMA,
    )
from features.definitions import FEATURE_STORE_SCHEMA
from live.daily import DailyConfig, run_daily
from live.replay import evening
from live.worker import worker_for
from monitoring.alerts import Thresholds
from sources.base import Sources
from sources.lines import DropFolderLines
from sources.nba_stats import NbaStatsResults
from tests.fakes.nba_stats import install_fake_nba_stats, shipped_box_rows
from tests.fakes.webhook import Receiver
from tests.integration.test_serving import promoted  # noqa: F401 (fixture)
from warehouse import Warehouse, connect

# four evenings: the first predicts 2025-01-09; each later one takes in the day before, then predicts
EVENINGS = [dt.date(2025, 1, 9) + dt.timedelta(days=i) for i in range(4)]
TABLES = (BOX_SCORES_SCHEMA, DATA_CHECKS_SCHEMA, FEATURE_STORE_SCHEMA, PREDICTIONS_SCHEMA, PREDICTION_GRADES_SCHEMA,
          MONITORING_SCHEMA, ALERTS_SCHEMA)


@pytest.fixture
def evening_before(small_store: str, tmp_path) -> Warehouse:
    """A warehouse as it stood on the evening of 2025-01-08: the real box scores, lines and features
    up to that day."""
    source, live = connect(small_store), connect(f"duckdb:///{tmp_path / 'live.duckdb'}")
    before = (dt.date(2000, 1, 1), EVENINGS[0] - dt.timedelta(days=1))
    for schema in (BOX_SCORES_SCHEMA, PROP_LINES_SCHEMA, FEATURE_STORE_SCHEMA):
        live.write(schema, source.read(schema, date_range=before))
    return live


def snapshot(warehouse: Warehouse) -> dict[str, pd.DataFrame]:
    return {schema.name: warehouse.read(schema) for schema in TABLES}


@pytest.mark.slow
def test_three_game_days_ingested_graded_monitored_and_the_next_slate_predicted(
        promoted: dict, evening_before: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setenv("NBA_STATS_DELAY", "0")
    box_rows = shipped_box_rows(EVENINGS[0], EVENINGS[-1])
    fake = install_fake_nba_stats(monkeypatch, box_rows)
    sources = Sources(NbaStatsResults(), DropFolderLines(settings.LINES_DEFAULT))
    store = evening_before
    with Receiver() as webhook, worker_for(store) as worker:
        reports = []
        for day in EVENINGS:
            # the last evening forces the drift rule: any feature drift at all fires it
            limits = Thresholds(max_psi=0.0) if day == EVENINGS[-1] else Thresholds()
            cfg = DailyConfig(day, retrain_every=0, now=evening(day), webhook_url=webhook.url, thresholds=limits)
            reports.append(run_daily(cfg, sources, store, worker))
        before = snapshot(store)
        rerun = run_daily(DailyConfig(EVENINGS[-1], retrain_every=0,
                                      now=evening(EVENINGS[-1]) + dt.timedelta(hours=1), webhook_url=webhook.url,
                                      thresholds=Thresholds(max_psi=0.0)), sources, store, worker)
        posted = webhook.bodies.get(timeout=5)
        assert webhook.bodies.empty()  # the rerun sent nothing new

    # results of the three days came in through LeagueGameLog, passed the checks and became features
    played = sorted(EVENINGS[:-1])
    assert {r.endpoint for r in fake.requests} == {"leaguegamelog", "scheduleleaguev2"}
    checks = store.read(DATA_CHECKS_SCHEMA)
    assert checks.set_index("game_date")["status"].to_dict() == dict.fromkeys(played, "passed")
    box = store.read(BOX_SCORES_SCHEMA, date_range=(played[0], played[-1]))
    assert len(box) == len(box_rows[box_rows["GAME_DATE"] < str(EVENINGS[-1])])
    features = store.read(FEATURE_STORE_SCHEMA, date_range=(played[0], played[-1]))
    assert features["points"].notna().sum() == len(box)

    # every prediction of a played day is graded: actual points for those who played, void for the rest
    predictions = store.read(PREDICTIONS_SCHEMA)
    grades = store.read(PREDICTION_GRADES_SCHEMA)
    graded_days = predictions[predictions["game_date"].isin(played)]
    assert len(grades) == len(graded_days) > 0
    joined = grades.merge(box[["game_id", "player_id", "points"]], on=["game_id", "player_id"], how="left")
    assert (joined["outcome"] == "void").sum() == joined["points"].isna().sum() > 0
    played_rows = joined[joined["outcome"] == "graded"]
    assert (played_rows["actual_points"] == played_rows["points"].astype(float)).all()
    assert ((played_rows["abs_error"] - (played_rows["predicted_points"] - played_rows["points"]).abs()).abs()
            < 1e-9).all()

    # the next slate: every slate player of the last evening predicted by every production system
    tonight = store.read(FEATURE_STORE_SCHEMA, date_range=(EVENINGS[-1], EVENINGS[-1]))
    assert len(tonight) and tonight["points"].isna().all()
    last = predictions[predictions["game_date"] == EVENINGS[-1]]
    assert len(last) == len(tonight) * last["system"].nunique() and last["system"].nunique() >= 4
    assert reports[-1].predicted == len(last)

    # one monitoring record per graded day, and the MLflow run shows them over game days
    metrics = store.read(MONITORING_SCHEMA)
    model_days = sorted(set(metrics.loc[metrics["system"] != DATA_SYSTEM, "game_date"]))
    assert model_days == played
    client = MlflowClient()
    experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT)
    (run,) = client.search_runs([experiment.experiment_id])
    history = client.get_metric_history(run.info.run_id, "ensemble_v1.mae_day")
    assert len(history) == len(played)

    # the forced alert was stored, POSTed once to the webhook and reported
    alerts = store.read(ALERTS_SCHEMA)
    assert set(alerts.loc[alerts["game_date"] == EVENINGS[-1], "rule"]) == {"drift"} and reports[-1].alerts
    assert "nba-player-points" in posted["text"]

    # a rerun of the last evening changes nothing
    after = snapshot(store)
    for name, frame in before.items():
        pd.testing.assert_frame_equal(after[name], frame, obj=name)
    assert rerun.alerts == reports[-1].alerts
