"""The season's monitoring run in a real MLflow (SQLite store in tmp): steps and timestamps are
game days, a rerun adds no points, the version in service leads each series, plots are logged."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from contracts import MONITORING_EXPERIMENT, PREDICTION_GRADES_SCHEMA, SCHEDULE_SCHEMA
from monitoring.metrics import drift_reference, record_data_metrics, record_model_metrics
from monitoring.tracking import log_days, registered_test_mae
from tests.unit.test_monitoring_metrics import _features, grades

OPENING = dt.date(2024, 10, 22)
DAY1, DAY2 = dt.date(2024, 11, 1), dt.date(2024, 11, 2)


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    return MlflowClient()


def _graded(day: dt.date, errors: list[float], version: str) -> pd.DataFrame:
    rows = [("graded", 20.0, e, 18.5, "win" if i % 2 else "loss", 0.6) for i, e in enumerate(errors)]
    return grades(rows, day=day, version=version).assign(player_id=[100 * int(version) + i for i in range(len(rows))],
                                                         game_id=f"G{day:%d}")


def test_season_run_logs_game_days_once_with_plots(warehouse, client: MlflowClient) -> None:
    warehouse.write(SCHEDULE_SCHEMA, pd.DataFrame({"game_date": [OPENING, DAY1], "game_id": ["A", "B"],
                                                   "season": "2024-25", "home_team": "BOS", "away_team": "NYK"}))
    warehouse.write(PREDICTION_GRADES_SCHEMA, pd.concat([
        _graded(DAY1, [1.0, 3.0], "3"),
        _graded(DAY2, [5.0], "3"),                 # the old version, one late game
        _graded(DAY2, [2.0, 2.0, 2.0], "4"),       # the retrained version, in service from DAY2
    ], ignore_index=True))
    for day in (DAY1, DAY2):
        record_model_metrics(warehouse, day)
    reference = drift_reference(_features({"is_home": [0.0, 1.0] * 50}))
    record_data_metrics(warehouse, DAY2, reference, features=_features({"is_home": [1.0] * 10}, day=DAY2))

    run_ids = log_days(warehouse, DAY1, DAY2)
    log_days(warehouse, DAY1, DAY2)  # a rerun of the same days

    experiment = client.get_experiment_by_name(MONITORING_EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == run_ids and runs[0].data.tags["monitoring_season"] == "2024-25"
    mae = client.get_metric_history(run_ids[0], "xgboost_v1.mae_7d")
    assert [(m.step, m.timestamp, m.value) for m in mae] == [
        (10, int(pd.Timestamp(DAY1, tz="UTC").timestamp() * 1000), 2.0),
        (11, int(pd.Timestamp(DAY2, tz="UTC").timestamp() * 1000), 2.0),  # version 4's, not 3's (5.0 / 3.0)
    ]
    psi = client.get_metric_history(run_ids[0], "data.psi.is_home_7d")
    assert len(psi) == 1 and psi[0].step == 11 and psi[0].value > 1
    artifacts = {a.path for a in client.list_artifacts(run_ids[0], "plots")}
    assert artifacts == {"plots/rolling_mae.png", "plots/p_over_reliability.png"}


def test_test_mae_of_a_registered_version(client: MlflowClient, tmp_path: Path) -> None:
    with mlflow.start_run() as run:
        mlflow.log_metric("test_mae", 4.446)
    client.create_registered_model("xgboost_v1")
    version = client.create_model_version("xgboost_v1", (tmp_path / "model").as_uri(), run_id=run.info.run_id)
    assert registered_test_mae(client, "xgboost_v1", version.version) == 4.446
    assert registered_test_mae(client, "xgboost_v1", "backtest-2024-10") is None
