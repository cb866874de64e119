"""The worker and the coordinator as real HTTP servers on loopback, serving registered models."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from contracts import DEFAULT_EXPERIMENT, PREDICTIONS_SCHEMA, PRODUCTION_ALIAS
from features.definitions import FEATURE_NAMES, FEATURE_STORE_SCHEMA, feature_names
from features.slate import build_slate
from features.store import read_store
from markets import MARKETS
from registry.points_model import PYFUNC_ENTRY, loaded_bundle
from registry.promotion import promote
from registry.systems.xgboost_v1 import PARALLEL_ROWS
from registry.tracking import experiment_id_for
from serving.coordinator import predict_date
from serving.events import InProcessBus
from serving.local import running
from serving.models import ProductionModels
from serving.service import create_coordinator_app
from serving.worker import create_app
from warehouse import connect

POINTS_FEATURES = feature_names(MARKETS["points"])

TOKEN = "test-token"
DAY = dt.date(2025, 1, 10)


@pytest.fixture
def promoted(promoted_env: dict) -> dict:
    """Every system's trained version in production, in this test's own copy of the registry."""
    return promoted_env


@pytest.fixture
def worker(promoted: dict, small_store: str):
    app = create_app(warehouse=connect(small_store), token=TOKEN, poll_seconds=0)
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def test_index_and_health_list_the_production_systems(worker: httpx.Client, promoted: dict) -> None:
    systems = worker.get("/").json()["systems"]
    for name in ("xgboost_v1", "catboost_v8", "ensemble_v1", "moving_average"):
        assert systems[name]["version"] == promoted["results"][name].version
        assert systems[name]["run_id"] == promoted["results"][name].run_id and systems[name]["feature_version"]
    health = worker.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"


def test_predictions_match_the_registry_models(worker: httpx.Client, small_store: str) -> None:
    rows = read_store(connect(small_store), DAY, DAY).head(5)
    answer = worker.post("/predict", json={"games": [{"player_id": int(p), "game_date": str(DAY)}
                                                     for p in rows.player_id]})
    assert answer.status_code == 200
    items = answer.json()["predictions"]
    x = rows[POINTS_FEATURES].astype(float)
    for system in ("xgboost_v1", "catboost_v8", "ensemble_v1", "moving_average"):
        expected = mlflow.pyfunc.load_model(f"models:/{system}@{PRODUCTION_ALIAS}").predict(x)
        served = [item["systems"][system]["predicted_points"] for item in items]
        np.testing.assert_allclose(served, expected, atol=1e-3)
    assert all(item["system"] == "ensemble_v1" for item in items)


def test_a_line_gives_an_over_under_call_and_a_probability(worker: httpx.Client, small_store: str) -> None:
    row = read_store(connect(small_store), DAY, DAY).iloc[0]
    low = worker.post("/predict", json={"games": [{"player_id": int(row.player_id), "game_date": str(DAY),
                                                   "line": 0.5}]}).json()["predictions"][0]
    high = worker.post("/predict", json={"games": [{"player_id": int(row.player_id), "game_date": str(DAY),
                                                    "line": 99.5}]}).json()["predictions"][0]
    assert (low["recommendation"], high["recommendation"]) == ("OVER", "UNDER")
    # the lead system's fitted distribution, centred towards the line it is asked about (the line is the
    # better forecast), gives the answer's probabilities; the call follows them
    lead = loaded_bundle(mlflow.pyfunc.load_model(f"models:/{low['system']}@{PRODUCTION_ALIAS}"))
    assert high["p_over"] < 0.5 < low["p_over"] and high["p_under"] > 0.5
    expected = lead.probabilities(np.array([low["predicted_points"]]), np.array([0.5]))
    assert low["p_over"] == pytest.approx(expected[0][0], abs=1e-3)  # the answer's points are rounded to 3 decimals
    assert low["p_push"] == 0.0 and low["p_over"] + low["p_under"] == pytest.approx(1.0, abs=1e-3)
    explicit = worker.post("/predict", json={"rows": [{**{n: None if np.isnan(row[n]) else float(row[n])
                                                           for n in FEATURE_NAMES}, "line": 0.5}]}).json()
    assert explicit["predictions"][0]["systems"]["xgboost_v1"]["predicted_points"] == \
        low["systems"]["xgboost_v1"]["predicted_points"]


def test_a_table_of_rows_is_answered_in_columns(worker: httpx.Client, small_store: str) -> None:
    rows = read_store(connect(small_store), DAY, DAY).head(20)
    data = [[None if np.isnan(v) else float(v) for v in r] for r in rows[list(FEATURE_NAMES)].to_numpy(float)]
    columns = list(FEATURE_NAMES)[::-1]  # any column order: named once
    answer = worker.post("/predict", json={"table": {"columns": columns, "data": [r[::-1] for r in data]},
                                           "systems": ["xgboost_v1", "catboost_v8"]})
    assert answer.status_code == 200
    result = answer.json()["columns"]
    expected = mlflow.pyfunc.load_model(f"models:/xgboost_v1@{PRODUCTION_ALIAS}").predict(
        rows[POINTS_FEATURES].astype(float))
    np.testing.assert_allclose(result["xgboost_v1"]["predicted_points"], expected, atol=1e-3)
    assert set(result) == {"xgboost_v1", "catboost_v8"} and len(result["catboost_v8"]["recommendation"]) == 20


def test_a_line_is_seen_the_same_in_a_table_row_and_a_game_by_key(worker: httpx.Client, small_store: str) -> None:
    """One stored row, asked by key and sent as a table row in its own column order, in one request
    and both with a line of 0.5: the line replaces the stored one either way, so both get the same
    prediction, price and call."""
    row = read_store(connect(small_store), DAY, DAY).iloc[0]
    columns = POINTS_FEATURES[::-1]
    answer = worker.post("/predict", json={
        "games": [{"player_id": int(row.player_id), "game_date": str(DAY), "line": 0.5}],
        "table": {"columns": columns, "data": [[None if np.isnan(row[c]) else float(row[c]) for c in columns]],
                  "line": [0.5]}})
    assert answer.status_code == 200
    by_key, by_table = answer.json()["predictions"]
    assert by_key["line"] == by_table["line"] == 0.5 and by_key["player_id"] == int(row.player_id)
    for key in ("system", "predicted_points", "p_over", "p_under", "recommendation"):
        assert by_key[key] == by_table[key], key


def test_a_large_table_answers_what_its_rows_get_one_at_a_time(worker: httpx.Client, small_store: str) -> None:
    """A batch from PARALLEL_ROWS rows on is predicted on two threads by a copy of the model: the
    same numbers, to the last digit, as each row sent alone."""
    rows = read_store(connect(small_store), DAY - dt.timedelta(days=7), DAY).head(PARALLEL_ROWS + 44)
    assert len(rows) == PARALLEL_ROWS + 44
    data = [[None if np.isnan(v) else float(v) for v in r] for r in rows[POINTS_FEATURES].to_numpy(float)]
    systems = ["xgboost_v1", "ensemble_v1"]
    whole = worker.post("/predict", json={"table": {"columns": POINTS_FEATURES, "data": data}, "systems": systems})
    assert whole.status_code == 200
    for i in (0, PARALLEL_ROWS - 1, len(data) - 1):
        alone = worker.post("/predict", json={"table": {"columns": POINTS_FEATURES, "data": [data[i]]},
                                              "systems": systems}).json()["columns"]
        for name in systems:
            assert whole.json()["columns"][name]["predicted_points"][i] == alone[name]["predicted_points"][0]


@pytest.mark.parametrize(("body", "field", "value"), [
    ({"games": [{"player_id": "abc", "game_date": "2025-01-10"}]}, ["body", "games", 0, "player_id"], "abc"),
    ({"games": [{"player_id": 1, "game_date": "2025-13-40"}]}, ["body", "games", 0, "game_date"], "2025-13-40"),
    ({"games": [{"player_id": 1, "game_date": "2025-01-10", "line": -3}]}, ["body", "games", 0, "line"], -3),
    ({"rows": [{"points_avg_last_5": 1.0}]}, ["body"], None),  # lacks the market's other features
    ({"rows": [{**dict.fromkeys(FEATURE_NAMES, 1.0), "points_avg_last_50": 2}]},
     ["body", "rows", 0, "points_avg_last_50"], 2),
    ({"games": [], "rows": []}, ["body"], None),
    ({"table": {"columns": ["points_avg_last_5"], "data": [[1.0]]}}, ["body"], None),
    ({"table": {"columns": [*POINTS_FEATURES, "days_rest"], "data": [[1.0] * 34]}}, ["body", "table"], None),
    ({"table": {"columns": list(FEATURE_NAMES), "data": [["x"] * len(FEATURE_NAMES)]}},
     ["body", "table", "data", 0, 0], "x"),
])
def test_bad_requests_are_422_naming_field_and_value(worker: httpx.Client, body: dict, field: list,
                                                     value: object) -> None:
    response = worker.post("/predict", json=body)
    assert response.status_code == 422
    errors = response.json()["detail"]
    match = [e for e in errors if e["loc"] == field]
    assert match, errors
    if value is not None:
        assert match[0]["input"] == value


def test_rows_written_after_a_cached_read_are_found(promoted: dict, small_store: str, tmp_path: Path) -> None:
    shutil.copy(small_store.removeprefix("duckdb:///"), tmp_path / "w.duckdb")
    store = connect(f"duckdb:///{tmp_path / 'w.duckdb'}")
    with running(create_app(warehouse=store, poll_seconds=0)) as url:
        ask = {"games": [{"player_id": 1628369, "game_date": "2025-10-22"}]}
        assert httpx.post(f"{url}/predict", json=ask).json()["missing"]  # no slate yet: cached as empty
        slate = pd.DataFrame({"game_date": ["2025-10-22"], "team": ["BOS"], "opponent": ["NYK"],
                              "is_home": [True], "players": [[1628369]]})
        store.write(FEATURE_STORE_SCHEMA, build_slate(store, slate))
        answer = httpx.post(f"{url}/predict", json=ask).json()
    assert answer["missing"] == [] and answer["predictions"][0]["game_id"] == "20251022NYKBOS"


def test_unknown_player_is_reported_not_guessed(worker: httpx.Client) -> None:
    answer = worker.post("/predict", json={"games": [{"player_id": 999999999, "game_date": str(DAY)}]}).json()
    assert answer["predictions"] == [] and "no feature row for player_id 999999999" in answer["missing"][0]["reason"]


def test_promotion_then_reload_changes_the_served_version(promoted: dict, small_store: str, worker: httpx.Client,
                                                          tmp_path: Path) -> None:
    client = MlflowClient()
    before = worker.get("/").json()["systems"]["moving_average"]["version"]
    source = client.get_model_version("moving_average", before)
    new = str(client.create_model_version("moving_average", source.source, run_id=source.run_id).version)
    client.set_model_version_tag("moving_average", new, "test_start", "2025-01-01")
    assert worker.post("/reload").status_code == 401  # the token is required
    promote("moving_average", new, force=True, reason="reload test", warehouse=connect(small_store))
    answer = worker.post("/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.json()["changes"]["moving_average"] == f"v{before} -> v{new}"
    assert worker.get("/").json()["systems"]["moving_average"]["version"] == new


def test_a_broken_version_leaves_the_old_one_serving(promoted: dict, worker: httpx.Client, tmp_path: Path) -> None:
    client = MlflowClient()
    good = worker.get("/").json()["systems"]["catboost_v8"]["version"]
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "meta.json").write_text('{"kind": "catboost", "model_file": "missing.cbm", "features": []}')
    with mlflow.start_run(experiment_id=experiment_id_for(DEFAULT_EXPERIMENT), run_name="broken model"):
        info = mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_ENTRY),
                                       artifacts={"bundle": str(folder)}, registered_model_name="catboost_v8")
    client.set_registered_model_alias("catboost_v8", PRODUCTION_ALIAS, str(info.registered_model_version))
    answer = worker.post("/reload", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert "failed to load" in answer["changes"]["catboost_v8"]
    index = worker.get("/").json()
    assert index["systems"]["catboost_v8"]["version"] == good and "failed to load" in index["errors"]["catboost_v8"]
    served = worker.post("/predict", json={"games": [{"player_id": 1628369, "game_date": str(DAY)}]})
    assert served.json()["predictions"][0]["systems"]["catboost_v8"]["version"] == good


def test_health_is_503_with_a_reason_when_nothing_is_promoted(small_store: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'empty.db'}")
    with running(create_app(ProductionModels(), connect(small_store), poll_seconds=0)) as url:
        response = httpx.get(f"{url}/health")
    assert response.status_code == 503 and "no system has a production version" in response.json()["reason"]


def test_coordinator_twice_leaves_no_duplicates(promoted: dict, small_store: str, tmp_path: Path) -> None:
    shutil.copy(small_store.removeprefix("duckdb:///"), tmp_path / "w.duckdb")
    store = connect(f"duckdb:///{tmp_path / 'w.duckdb'}")
    with running(create_app(warehouse=store, poll_seconds=0)) as url:
        first = predict_date(DAY, url, store, batch_size=50)
        rows_after_first = store.read(PREDICTIONS_SCHEMA, date_range=(DAY, DAY), equals={"source": "coordinator"})
        second = predict_date(DAY, url, store, batch_size=50)
    stored = store.read(PREDICTIONS_SCHEMA, date_range=(DAY, DAY), equals={"source": "coordinator"})
    players = len(read_store(store, DAY, DAY))
    assert first.ok and second.ok and first.written == second.written == 4 * players
    assert len(stored) == len(rows_after_first) == 4 * players
    assert not stored.duplicated(list(PREDICTIONS_SCHEMA.key)).any()
    with_line = stored[stored.line.notna()]
    assert len(with_line) and with_line.recommendation.isin(["OVER", "UNDER", "PASS"]).all()
    assert with_line.p_over.between(0, 1).all() and stored[stored.line.isna()].recommendation.eq("PASS").all()


def test_a_dead_worker_is_a_reported_partial_failure(small_store: str, tmp_path: Path) -> None:
    shutil.copy(small_store.removeprefix("duckdb:///"), tmp_path / "w.duckdb")
    store = connect(f"duckdb:///{tmp_path / 'w.duckdb'}")
    result = predict_date(DAY, "http://127.0.0.1:9", store, batch_size=100, retries=2, backoff=0.01)
    assert not result.ok and result.written == 0
    assert result.failed_batches == ["the worker at http://127.0.0.1:9 could not be asked what it serves: "
                                     "[Errno 111] Connection refused"]


def test_a_completed_backfill_date_triggers_its_predictions(promoted: dict, small_store: str, tmp_path: Path) -> None:
    shutil.copy(small_store.removeprefix("duckdb:///"), tmp_path / "w.duckdb")
    store = connect(f"duckdb:///{tmp_path / 'w.duckdb'}")
    bus = InProcessBus()
    with running(create_app(warehouse=store, poll_seconds=0)) as worker_url:
        app = create_coordinator_app(worker_url, store, token=TOKEN, bus=bus)
        with running(app) as url:
            from tests.conftest import SEASON_2024_25

            response = httpx.post(f"{url}/backfill", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=300,
                                  json={"start_date": "2025-01-10", "end_date": "2025-01-11",
                                        "box_scores": str(SEASON_2024_25)})
            assert response.status_code == 202
            jobs = app.state.jobs
            rebuilt = jobs.wait(response.json()["job"], timeout=300)
            assert rebuilt["status"] == "done" and rebuilt["dates_rebuilt"] == ["2025-01-10", "2025-01-11"]
            assert bus.drain(timeout=120)
            states = [jobs.wait(job, timeout=120) for job, state in list(jobs.state.items())
                      if state["kind"] == "predict"]
    bus.close()
    assert sorted(s["game_date"] for s in states) == ["2025-01-10", "2025-01-11"]
    assert all(s["status"] == "done" and s["source"] == "event" for s in states)
    stored = store.read(PREDICTIONS_SCHEMA, date_range=(DAY, dt.date(2025, 1, 11)), equals={"source": "event"})
    assert set(stored.game_date) == {DAY, dt.date(2025, 1, 11)}
    assert len(stored) == 4 * len(read_store(store, DAY, dt.date(2025, 1, 11)))
