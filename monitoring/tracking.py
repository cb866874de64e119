"""The monitoring metrics in MLflow, where the UI draws them over the season's game days.

One run per season in the sibling experiment ``MONITORING_EXPERIMENT`` (found by its
``monitoring_season`` tag, created on first use): the training experiment's runs keep comparable
columns, and the season's run holds one time series per metric. A point's step is the number of
days since the season's first game day and its timestamp is the game date, so the UI's step and
time axes both read as game days. Keys are ``<system>.<metric>_<period>`` (``xgboost_v1.mae_7d``,
for the version in service that day; ``data.psi_max_7d``, ``data.freshness_days_day``).

A rerun of a day logs the same points; MLflow's SQL stores (SQLite, a tracking server on a
database) skip a point identical in key, step, timestamp and value, so it adds nothing. A rerun
whose values changed (late results) adds a second point at the same step: MLflow cannot delete a
point, and the warehouse's ``monitoring_metrics`` (replaced by key) stays the source of truth.
The two plots are redrawn from the warehouse tables and overwrite the previous day's.
"""

from __future__ import annotations

import datetime as dt

import matplotlib.pyplot as plt
import pandas as pd
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from contracts import (
    ALL_MARKETS,
    BOX_SCORES_SCHEMA,
    DATA_SYSTEM,
    MONITORING_EXPERIMENT,
    MONITORING_SCHEMA,
    PREDICTION_GRADES_SCHEMA,
    SCHEDULE_SCHEMA,
)
from features.slate import season_of
from markets import market
from monitoring import plots
from registry.promotion import registry_client
from registry.tracking import experiment_id_for
from warehouse import Warehouse

SEASON_TAG = "monitoring_season"
SEASON_START_TAG = "season_start"
BATCH = 1000  # MLflow's limit of metrics per log_batch


def registered_test_mae(client: MlflowClient, system: str, version: str) -> float | None:
    """The ``test_mae`` of the run that registered ``system`` version ``version``; None when the
    version is not in the registry (a backtest's version) or its run has no such metric."""
    try:
        run_id = client.get_model_version(system, str(version)).run_id
        return client.get_run(run_id).data.metrics.get("test_mae") if run_id else None
    except MlflowException:
        return None


def season_first_day(warehouse: Warehouse, season: str) -> dt.date | None:
    """The season's first game day: from the schedule, else from the box scores."""
    for schema in (SCHEDULE_SCHEMA, BOX_SCORES_SCHEMA):
        dates = warehouse.read(schema, equals={"season": season})["game_date"]
        if len(dates):
            return min(dates)
    return None


def season_run(client: MlflowClient, season: str, first_day: dt.date) -> tuple[str, dt.date]:
    """The season's monitoring run and the first day its steps count from, created on first use
    (the first day is fixed then, so steps never move)."""
    experiment_id = experiment_id_for(MONITORING_EXPERIMENT)
    found = client.search_runs([experiment_id], filter_string=f"tags.{SEASON_TAG} = '{season}'",
                               order_by=["attributes.start_time ASC"], max_results=1)
    if found:
        run = found[0]
        return run.info.run_id, dt.date.fromisoformat(run.data.tags[SEASON_START_TAG])
    run = client.create_run(experiment_id, run_name=f"monitoring-{season}",
                            tags={SEASON_TAG: season, SEASON_START_TAG: first_day.isoformat()})
    return run.info.run_id, first_day


def by_model_name(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows whose ``system`` is the registered model's name (``rebounds.xgboost_v1``), so every series
    (a key, a plot's line) is one market's system; data rows keep theirs."""
    if rows.empty:
        return rows
    names = [s if m == ALL_MARKETS else market(m).registered_name(s)
             for m, s in zip(rows["market"], rows["system"], strict=True)]
    return rows.assign(system=names)


def in_service(rows: pd.DataFrame) -> pd.DataFrame:
    """Model rows of the version in service each day per system: the one with the most
    player-games graded that day (then over 7 days), so a retrain switches the series over."""
    model = rows[rows["system"] != DATA_SYSTEM]
    counts = model[model["metric"] == "n_graded"].pivot_table(
        index=["game_date", "system", "model_version"], columns="period", values="value", aggfunc="first")
    counts = counts.reindex(columns=["day", "7d"]).fillna(0).reset_index()
    chosen = (counts.sort_values(["day", "7d", "model_version"])
              .drop_duplicates(["game_date", "system"], keep="last")[["game_date", "system", "model_version"]])
    return model.merge(chosen, on=["game_date", "system", "model_version"])


def _timestamp_ms(day: dt.date) -> int:
    return int(pd.Timestamp(day, tz="UTC").timestamp() * 1000)


def mlflow_points(rows: pd.DataFrame, first_day: dt.date) -> list[Metric]:
    """The points of ``monitoring_metrics`` rows as MLflow logs them (undefined values left out)."""
    points = pd.concat([in_service(rows), rows[rows["system"] == DATA_SYSTEM]], ignore_index=True)
    points = points.dropna(subset=["value"]).assign(key=lambda f: f["system"] + "." + f["metric"] + "_" + f["period"])
    return [Metric(key, float(value), _timestamp_ms(day), (day - first_day).days)
            for key, value, day in zip(points["key"], points["value"], points["game_date"], strict=True)]


def _log_figure(client: MlflowClient, run_id: str, fig: plt.Figure, name: str) -> None:
    client.log_figure(run_id, fig, f"plots/{name}.png")
    plt.close(fig)


def log_days(warehouse: Warehouse, start: dt.date, end: dt.date, client: MlflowClient | None = None,
             plots: bool = True) -> list[str]:
    """Log the stored monitoring metrics of ``start`` … ``end`` to their seasons' runs and, unless
    ``plots`` is False, redraw each season's plots (a replay draws them once, at its end:
    :func:`redraw_plots`); returns the run ids."""
    client = client or registry_client()
    rows = by_model_name(warehouse.read(MONITORING_SCHEMA, date_range=(start, end)))
    seasons = rows["game_date"].map(season_of)
    run_ids = []
    for season in sorted(set(seasons)):
        season_rows = rows[seasons == season]
        first_day = season_first_day(warehouse, season) or min(season_rows["game_date"])
        run_id, first_day = season_run(client, season, first_day)
        points = mlflow_points(season_rows, first_day)
        for i in range(0, len(points), BATCH):
            client.log_batch(run_id, metrics=points[i:i + BATCH])
        if plots:
            _draw(warehouse, client, run_id, first_day, max(season_rows["game_date"]))
        client.set_terminated(run_id)
        run_ids.append(run_id)
    return run_ids


def redraw_plots(warehouse: Warehouse, start: dt.date, end: dt.date, client: MlflowClient | None = None) -> None:
    """The plots ``log_days`` draws, of every season with monitoring rows in ``start`` … ``end`` up to
    its last such day: for a caller that logged those days with ``plots=False``. A replay's evenings
    would each redraw the season so far, and only the last drawing is kept."""
    client = client or registry_client()
    rows = warehouse.read(MONITORING_SCHEMA, date_range=(start, end))
    seasons = rows["game_date"].map(season_of)
    for season in sorted(set(seasons)):
        days = rows.loc[seasons == season, "game_date"]
        run_id, first_day = season_run(client, season, season_first_day(warehouse, season) or min(days))
        _draw(warehouse, client, run_id, first_day, max(days))


def _draw(warehouse: Warehouse, client: MlflowClient, run_id: str, first_day: dt.date, last: dt.date) -> None:
    history = in_service(by_model_name(warehouse.read(MONITORING_SCHEMA, date_range=(first_day, last))))
    _log_figure(client, run_id, plots.rolling_mae(history[history["metric"] == "mae"]), "rolling_mae")
    grades = by_model_name(warehouse.read(PREDICTION_GRADES_SCHEMA, date_range=(first_day, last)))
    _log_figure(client, run_id, plots.reliability(grades), "p_over_reliability")
