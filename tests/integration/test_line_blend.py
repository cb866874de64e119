"""Line Blend V1 is trained, registered, promoted, served, stored and graded like every system, and where a
player-game has no line it makes no prediction at any of those stages."""

from __future__ import annotations

import datetime as dt

import httpx
import mlflow
import numpy as np
import pytest

from contracts import LINE_BLEND_V1, MOVING_AVERAGE, PREDICTIONS_SCHEMA
from features.store import read_store
from live.daily import _already_predicted
from markets import MARKETS
from monitoring.grading import grade_days
from registry.promotion import promote
from serving.coordinator import predict_date
from serving.local import running
from serving.worker import create_app
from tests.conftest import train_into
from training.spec import load_spec
from warehouse import connect

DAY = dt.date(2025, 1, 10)
POINTS = MARKETS["points"]


@pytest.fixture(scope="module")
def blend_registry(small_store: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The baseline and the blend over it (the cheapest member), trained on 2024-25 up to 2025-02-15."""
    spec = load_spec("experiments/quick.yaml").override(systems=(MOVING_AVERAGE, LINE_BLEND_V1), n_trials=0,
                                                        start_date=dt.date(2024, 10, 22))
    return train_into(tmp_path_factory.mktemp("blend"), small_store, spec)


def test_the_blend_is_registered_served_and_abstains_without_a_line(blend_registry: dict, small_store: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in blend_registry["env"].items():
        monkeypatch.setenv(key, value)
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(blend_registry["env"]["MLFLOW_TRACKING_URI"])
    try:
        blend = blend_registry["results"][LINE_BLEND_V1]
        model = blend.bundle.model
        assert model.base == MOVING_AVERAGE and model.rows >= 300  # fitted on the validation rows' lines
        assert blend.metrics["test_mae"] == pytest.approx(blend.metrics["test_model_mae_on_lines"])  # lined games only
        for name in (MOVING_AVERAGE, LINE_BLEND_V1):
            assert promote(name, force=True, reason="blend test").promoted

        warehouse = connect(small_store)
        rows = read_store(warehouse, DAY, DAY)
        lined = rows[POINTS.line_feature].notna().to_numpy()
        with_line, without = int(rows["player_id"][lined].iloc[0]), int(rows["player_id"][~lined].iloc[0])
        with running(create_app(warehouse=warehouse, token="t", poll_seconds=0)) as url:
            with httpx.Client(base_url=url, timeout=60) as worker:
                assert set(worker.get("/").json()["markets"]["points"]) == {MOVING_AVERAGE, LINE_BLEND_V1}
                answer = worker.post("/predict", json={"games": [{"player_id": p, "game_date": str(DAY)}
                                                                 for p in (with_line, without)]})
                assert answer.status_code == 200 and not answer.json()["errors"], answer.text
                priced, unpriced = answer.json()["predictions"]
            assert priced["system"] == LINE_BLEND_V1 and priced["systems"][LINE_BLEND_V1]["p_over"] is not None
            abstained = unpriced["systems"][LINE_BLEND_V1]
            assert abstained["predicted_points"] is None and abstained["recommendation"] == "PASS"
            assert unpriced["system"] == MOVING_AVERAGE  # led by the next system that predicted it
            run = predict_date(DAY, url, warehouse, source="blend-test")
        assert run.ok
        stored = warehouse.read(PREDICTIONS_SCHEMA, date_range=(DAY, DAY))
        mine = stored[(stored["source"] == "blend-test") & (stored["system"] == LINE_BLEND_V1)]
        assert set(mine["player_id"]) == set(rows["player_id"][lined]) and mine["line"].notna().all()
        # the evening counts as done although the blend predicted only the games with a line
        assert _already_predicted(DAY, [("points", MOVING_AVERAGE), ("points", LINE_BLEND_V1)], rows, warehouse)
        grades = grade_days(warehouse, DAY, DAY)
        graded = grades[(grades["system"] == LINE_BLEND_V1) & (grades["outcome"] == "graded")]
        assert len(graded) == len(mine) and np.isfinite(graded["abs_error"]).all()
    finally:
        mlflow.set_tracking_uri(before)  # MLflow keeps the URI in a global: the next test must not find this store
