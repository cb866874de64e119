"""Retraining through the gate: a better challenger is promoted, a worse one refused, both audited."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from contracts import PRODUCTION_ALIAS, XGBOOST_V1
from live.retrain import RETRAINED_AS_OF, last_retrain, retrain
from registry.promotion import history, production_version, promote
from tests.integration.test_serving import promoted  # noqa: F401 (fixture)
from warehouse import connect

AS_OF = dt.date(2025, 2, 16)  # the day after the small store's data; the gate judges the last 14 game days


def spec(tmp_path: Path, name: str, params: dict) -> str:
    """An experiment spec that retrains XGBoost V1 alone with ``params``."""
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "seed": 42, "data": {"val_fraction": 0.2}, "tuning": {"n_trials": 0},
        "systems": {XGBOOST_V1: {"params": params, "tune": False}},
        "backtest": {"start_date": "2025-01-01", "end_date": "2025-01-13"}}))
    return str(path)


@pytest.mark.slow
def test_a_worse_challenger_is_refused_and_a_better_one_promoted(promoted: dict, small_store: str,  # noqa: F811
                                                                 tmp_path: Path) -> None:
    client, store = MlflowClient(), connect(small_store)
    weak = spec(tmp_path, "weak", {"eta": 0.001, "max_depth": 1})
    sound = spec(tmp_path, "sound", {"eta": 0.05, "max_depth": 6, "min_child_weight": 20.0})

    champion = production_version(client, XGBOOST_V1)
    refused = retrain(AS_OF, warehouse=store, experiment=weak)
    assert refused.promoted == [] and not refused.decisions[XGBOOST_V1].promoted
    assert production_version(client, XGBOOST_V1) == champion
    event = history(XGBOOST_V1)[-1]
    assert (event.action, event.version, event.from_version) == ("refuse", refused.versions[XGBOOST_V1], champion)
    assert event.figures["challenger_mae"] > event.figures["baseline_mae"]
    assert client.get_model_version(XGBOOST_V1, refused.versions[XGBOOST_V1]).tags[RETRAINED_AS_OF] == str(AS_OF)
    assert last_retrain() == AS_OF

    # the refused weak version made champion by hand: the next scheduled retrain beats it
    promote(XGBOOST_V1, refused.versions[XGBOOST_V1], force=True, reason="test: a weak champion",
            warehouse=store)
    better = retrain(AS_OF + dt.timedelta(days=7), warehouse=store, experiment=sound)
    assert better.promoted == [XGBOOST_V1]
    new = better.versions[XGBOOST_V1]
    assert str(client.get_model_version_by_alias(XGBOOST_V1, PRODUCTION_ALIAS).version) == new
    event = history(XGBOOST_V1)[-1]
    assert (event.action, event.version, event.from_version) == ("promote", new, refused.versions[XGBOOST_V1])
    assert event.reason == f"scheduled retrain as of {AS_OF + dt.timedelta(days=7)}"
    assert event.figures["ci_low"] > 0
