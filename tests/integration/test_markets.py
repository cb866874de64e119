"""Every stage covers every market: walk the table of markets and follow each through the feature store,
training and the registry, the promotion gate, the worker, the coordinator's stored predictions and grading.

One small training run covers all five markets (the moving-average baseline, fitted and registered like
every system, on the first half of 2024-25), so the walk stays cheap while every market is really
trained, registered, promoted, served, stored and graded; the learned systems are the points tests'.
"""

from __future__ import annotations

import datetime as dt

import httpx
import mlflow
import pytest
from mlflow.tracking import MlflowClient

from contracts import MOVING_AVERAGE, PREDICTIONS_SCHEMA, PROP_LINES_SCHEMA, XGBOOST_V1
from features.definitions import FEATURE_STORE_SCHEMA, feature_names, markdown_table
from features.store import read_store
from markets import MARKET_NAMES, MARKETS, MarketError, parse_markets, registered
from monitoring.grading import grade_days
from registry.promotion import PromotionError, history, production_version, promote, registry_client, rollback
from serving.coordinator import predict_date
from serving.local import running
from serving.worker import create_app
from sources.lines import ODDS_MARKETS
from tests.conftest import train_into
from training.spec import load_spec
from warehouse import connect

DAY = dt.date(2025, 1, 10)
SYSTEMS = (MOVING_AVERAGE,)


def test_the_table_of_markets_reaches_the_store_the_lines_and_the_docs() -> None:
    columns = set(FEATURE_STORE_SCHEMA.column_names)
    docs = markdown_table()
    names = {m.registered_name(s) for m in MARKETS.values() for s in (MOVING_AVERAGE, XGBOOST_V1)}
    assert len(names) == len(MARKETS) * 2  # two markets never share a registered model
    for market in MARKETS.values():
        assert market.name in columns and set(feature_names(market)) <= columns  # outcome and inputs stored
        assert all(f"`{name}`" in docs for name in feature_names(market))
        assert set(market.line_keys) <= set(ODDS_MARKETS.split(","))  # the odds adapter asks for it
        assert registered(market.registered_name(XGBOOST_V1)) == (market, XGBOOST_V1)
    assert parse_markets("all") == MARKET_NAMES and parse_markets("rebounds,points") == ("points", "rebounds")
    with pytest.raises(MarketError, match="'steals' is not one of points, rebounds, assists, threes, pra"):
        parse_markets("steals")


@pytest.fixture(scope="module")
def every_market(small_store: str, tmp_path_factory: pytest.TempPathFactory):
    """The two systems trained for every market in a registry of this module's own."""
    spec = load_spec("experiments/quick.yaml").override(markets=MARKET_NAMES, systems=SYSTEMS, n_trials=0,
                                                        start_date=dt.date(2024, 10, 22))
    return train_into(tmp_path_factory.mktemp("markets"), small_store, spec)


@pytest.fixture
def market_env(every_market: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    for key, value in every_market["env"].items():
        monkeypatch.setenv(key, value)
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(every_market["env"]["MLFLOW_TRACKING_URI"])
    yield every_market
    mlflow.set_tracking_uri(before)  # MLflow keeps the URI in a global: the next test must not find this store


def test_every_market_trains_registers_promotes_serves_stores_and_grades(market_env: dict, small_store: str) -> None:
    results, client = market_env["results"], MlflowClient()
    assert sorted(results) == sorted(m.registered_name(s) for m in MARKETS.values() for s in SYSTEMS)
    for name, result in results.items():
        tags = client.get_model_version(name, result.version).tags
        assert (tags["market"], tags["system"]) == (registered(name)[0].name, registered(name)[1])
        run = client.get_run(result.run_id)
        assert run.data.tags["market"] == tags["market"] and run.info.run_name == name
        assert 0 < result.metrics["test_mae"] < result.metrics["n_test"]  # measured on the market's own outcome

    # the gate is per market: promoting rebounds leaves points untouched, rollback undoes rebounds alone
    for name in results:
        assert promote(name, reason="markets test").promoted, name
    registry = registry_client()
    assert production_version(registry, "rebounds.moving_average") == results["rebounds.moving_average"].version
    with pytest.raises(PromotionError, match="rebounds.moving_average v1 has no earlier production version"):
        rollback("rebounds.moving_average", reason="its own history only")
    assert production_version(registry, MOVING_AVERAGE) == results[MOVING_AVERAGE].version
    assert [e.action for e in history("rebounds.moving_average")][0] == "promote"

    warehouse = connect(small_store)
    app = create_app(warehouse=warehouse, token="t", poll_seconds=0)
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as worker:
        served = worker.get("/").json()["markets"]
        assert {m: sorted(s) for m, s in served.items()} == {m: sorted(SYSTEMS) for m in MARKETS}
        player = int(read_store(warehouse, DAY, DAY)["player_id"].iloc[0])
        for market in MARKETS:
            answer = worker.post("/predict", json={"market": market,
                                                   "games": [{"player_id": player, "game_date": str(DAY),
                                                              "line": 2.0}]})
            assert answer.status_code == 200, answer.text
            item = answer.json()["predictions"][0]
            for system, values in item["systems"].items():
                p = values["p_over"] + values["p_push"] + values["p_under"]
                assert p == pytest.approx(1.0, abs=1e-3), (market, system)
                assert values["p_push"] > 0  # a whole-number line can push
                side = {"OVER": values["p_over"], "UNDER": values["p_under"]}.get(values["recommendation"])
                if side is not None:  # never against its own probability; a push is refunded
                    other = values["p_over"] + values["p_under"] - side
                    assert side > other and values["confidence"] == pytest.approx(side / (side + other), abs=1e-3)
        run = predict_date(DAY, url, warehouse, source="markets-test")
    assert run.ok and not run.unserved
    stored = warehouse.read(PREDICTIONS_SCHEMA, date_range=(DAY, DAY))
    stored = stored[stored["source"] == "markets-test"]
    assert set(stored["market"]) == set(MARKETS) and set(stored["system"]) == set(SYSTEMS)
    lines = warehouse.read(PROP_LINES_SCHEMA, date_range=(DAY, DAY))
    rebounds = stored[(stored["market"] == "rebounds") & stored["line"].notna()]
    assert len(rebounds) and set(rebounds["player_id"]) <= set(lines.loc[lines["market"] == "rebounds", "player_id"])

    grades = grade_days(warehouse, DAY, DAY)
    graded = grades[grades["outcome"] == "graded"]
    assert set(graded["market"]) == set(MARKETS)
    box = read_store(warehouse, DAY, DAY).set_index("player_id")
    one = graded[graded["market"] == "pra"].iloc[0]
    assert one["actual_points"] == box.loc[one["player_id"], "pra"]  # the market's own outcome
