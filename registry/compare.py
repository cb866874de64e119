"""One table of every registered version of every system, with the contract metrics of the run
that produced it, which version is in production, and how often the two tree models disagree."""

from __future__ import annotations

from dataclasses import dataclass

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from contracts import CATBOOST_V8, DEFAULT_EXPERIMENT, LINE_METRIC_KEYS, SYSTEMS, XGBOOST_V1
from features.definitions import feature_names
from markets import DEFAULT_MARKET, MARKETS
from registry.promotion import (
    PromotionError,
    held_out_games,
    production_version,
    registry_client,
    resolve_version,
)
from registry.tracking import adopt_entry_run, experiment_id_for
from warehouse import Warehouse, connect

DISAGREE_POINTS = 3.0
SHOWN = ("test_mae", "val_mae", "train_mae", "train_val_gap", "test_rmse", "test_within_3_pct", "n_train",
         "n_test", *LINE_METRIC_KEYS)


@dataclass
class Comparison:
    table: pd.DataFrame
    disagreement: dict[str, float]

    def markdown(self) -> str:
        if self.table.empty:
            return f"No registered version of any system ({', '.join(SYSTEMS)}) yet: run train first.\n"
        header = "| " + " | ".join(self.table.columns) + " |"
        rule = "|" + "---|" * len(self.table.columns)
        body = ["| " + " | ".join(_cell(v) for v in row) + " |" for row in self.table.itertuples(index=False)]
        return "\n".join([header, rule, *body, "", self._disagreement_text()]) + "\n"

    def html(self) -> str:
        return (self.table.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="")
                + f"<p>{self._disagreement_text()}</p>\n")

    def _disagreement_text(self) -> str:
        if not self.disagreement:
            return "XGBoost/CatBoost disagreement: needs a version of both."
        d = self.disagreement
        return (f"XGBoost v{d['xgboost_version']:.0f} and CatBoost v{d['catboost_version']:.0f} disagree by more "
                f"than {DISAGREE_POINTS:.0f} points on {d['disagree_pct']:.1f}% of {d['games']:.0f} test games.")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.0f}" if value.is_integer() else f"{value:.3f}"
    return str(value)


def versions_table(client: MlflowClient) -> pd.DataFrame:
    rows = []
    for market, system in ((m, s) for m in MARKETS.values() for s in SYSTEMS):
        name = market.registered_name(system)
        try:
            versions = client.search_model_versions(f"name = '{name}'")
        except MlflowException:
            continue
        production = production_version(client, name)
        for v in sorted(versions, key=lambda v: int(v.version)):
            metrics = client.get_run(v.run_id).data.metrics if v.run_id else {}
            rows.append({"market": market.name, "system": system, "version": int(v.version),
                         "production": "yes" if str(v.version) == production else "",
                         **{k: float(metrics.get(k, np.nan)) for k in SHOWN}})
    return pd.DataFrame(rows)


def _chosen(client: MlflowClient, system: str) -> str | None:
    """The production version, else the latest; None when the system has no version."""
    try:
        return production_version(client, system) or resolve_version(client, system, None)
    except PromotionError:
        return None


def disagreement(client: MlflowClient, warehouse: Warehouse) -> dict[str, float]:
    """Share of the XGBoost version's test games where the two tree models differ by > 3 points."""
    xgb_version, cat_version = _chosen(client, XGBOOST_V1), _chosen(client, CATBOOST_V8)
    if xgb_version is None or cat_version is None:
        return {}
    rows, _, _ = held_out_games(client, XGBOOST_V1, xgb_version, warehouse)
    x = rows[feature_names(MARKETS[DEFAULT_MARKET])].astype(float)
    xgb = mlflow.pyfunc.load_model(f"models:/{XGBOOST_V1}/{xgb_version}").predict(x)
    cat = mlflow.pyfunc.load_model(f"models:/{CATBOOST_V8}/{cat_version}").predict(x)
    return {"xgboost_version": float(xgb_version), "catboost_version": float(cat_version), "games": float(len(rows)),
            "disagree_pct": float(100 * np.mean(np.abs(np.asarray(xgb) - np.asarray(cat)) > DISAGREE_POINTS))}


def compare(warehouse: Warehouse | None = None, experiment_name: str = DEFAULT_EXPERIMENT) -> Comparison:
    """Build the comparison and log it (Markdown and HTML) to a ``compare`` run of the experiment; with
    no registered version there is nothing to compare, so nothing is logged (not even an experiment)."""
    client = registry_client()
    table = versions_table(client)
    if table.empty:
        return Comparison(table, {})
    result = Comparison(table, disagreement(client, warehouse or connect()))
    experiment_id = experiment_id_for(experiment_name)
    entry_run = adopt_entry_run("compare", experiment_id)
    with mlflow.start_run(run_name="compare", experiment_id=experiment_id) as run:
        mlflow.set_tag("kind", "compare")
        mlflow.log_text(result.markdown(), "comparison.md")
        mlflow.log_text(result.html(), "comparison.html")
        if result.disagreement:
            mlflow.log_metric("xgb_catboost_disagree_pct", result.disagreement["disagree_pct"])
    if entry_run:
        client.set_tag(entry_run, "compare_run", run.info.run_id)
    return result
