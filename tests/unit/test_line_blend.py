"""Line Blend V1: fitted only on lines graded before the day it predicts, and no prediction without a line."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from contracts import LINE_BLEND_V1, MOVING_AVERAGE, SYSTEMS
from features.definitions import feature_names
from markets import MARKETS
from registry import probability, systems
from registry.points_model import Bundle
from registry.predictions import prediction_rows, priced
from registry.systems import line_blend_v1
from serving.models import smoke_tested
from serving.worker import Batch, answer_json, predict_batch
from training.splits import time_splits

POINTS = MARKETS["points"]
DAYS = [dt.date(2024, 11, 1) + dt.timedelta(days=i) for i in range(40)]
PLAYERS = 45


def _store(seed: int = 0) -> pd.DataFrame:
    """40 game days of 45 players: an outcome around each player's mean, and averages and a line that
    each know the mean roughly (so a blend of the two beats either), the line posted for two players in three."""
    rng = np.random.default_rng(seed)
    n = len(DAYS) * PLAYERS
    mean = np.tile(rng.uniform(5, 30, PLAYERS), len(DAYS))
    frame = pd.DataFrame(dict.fromkeys(feature_names(POINTS), np.nan), index=range(n))
    frame["game_date"] = np.repeat(DAYS, PLAYERS)
    frame["game_id"] = [f"g{d:%m%d}" for d in frame["game_date"]]
    frame["player_id"] = np.tile(np.arange(1, PLAYERS + 1), len(DAYS))
    frame["points"] = np.round(np.maximum(mean + rng.normal(0, 5, n), 0))
    for column in ("points_avg_last_5", "points_avg_last_10", "points_avg_season", "points_ewm_10"):
        frame[column] = mean + rng.normal(0, 2, n)
    frame[POINTS.line_feature] = np.where(rng.random(n) < 2 / 3, np.floor(mean + rng.normal(0, 3, n)) + 0.5, np.nan)
    return frame


def _blend(store: pd.DataFrame, day: dt.date) -> tuple[Bundle, pd.DataFrame]:
    """The blend over the moving average, fitted on the games before ``day``; and ``day``'s games."""
    splits = time_splits(store, DAYS[0], day, day, 0.5, POINTS)
    average = Bundle({"kind": "moving_average", "features": splits.features},
                     systems.module(MOVING_AVERAGE).fit({}, splits, 0))
    members = dict.fromkeys(systems.members_of(LINE_BLEND_V1, (MOVING_AVERAGE,)), average)
    blend = Bundle({"kind": "line_blend", "features": splits.features},
                   line_blend_v1.fit({}, splits, 0, None, members), members)
    return blend, splits.test[splits.test["game_date"] == day]


def test_the_blend_recovers_how_far_to_move_from_the_line() -> None:
    rng = np.random.default_rng(1)
    line, predicted = rng.uniform(5, 30, 4000), rng.uniform(5, 30, 4000)
    actual = line + 0.3 * (predicted - line) - 0.5 + rng.laplace(0, 1, 4000)
    weight, shift, rows = line_blend_v1.fit_blend(predicted, line, actual)
    assert (weight, shift, rows) == (pytest.approx(0.3, abs=0.03), pytest.approx(-0.5, abs=0.1), 4000)
    # too few graded lines: the line itself, nothing claimed beyond it
    few = probability.MIN_LINE_ROWS - 1
    assert line_blend_v1.fit_blend(predicted[:few], line[:few], actual[:few]) == (0.0, 0.0, few)
    unmoved = line_blend_v1.LineBlend("ensemble_v1", POINTS.line_feature, 0.0, 0.0, few, 0)
    np.testing.assert_array_equal(line_blend_v1.blend(unmoved, predicted, line), line)


def test_a_line_graded_on_day_d_never_moves_a_prediction_of_day_d_or_before() -> None:
    store = _store()
    day = DAYS[30]
    blend, today = _blend(store, day)
    assert blend.model.rows >= probability.MIN_LINE_ROWS and 0 < blend.model.weight < 1
    before = blend.predict(today)

    # the lines and results of day d and after rewritten: the fit and the predictions of day d stay
    later = store.copy()
    future = later["game_date"] >= day
    later.loc[future & (later["game_date"] > day), POINTS.line_feature] += 7.0
    later.loc[future, "points"] += 9.0
    again, _ = _blend(later, day)
    assert (again.model.weight, again.model.shift) == (blend.model.weight, blend.model.shift)
    assert again.model.distribution == blend.model.distribution
    np.testing.assert_array_equal(again.predict(today), before)

    # the lines graded the day before do move it: the test would see a leak
    earlier = store.copy()
    earlier.loc[earlier["game_date"] == DAYS[29], "points"] += 9.0
    moved, _ = _blend(earlier, day)
    assert moved.model.shift != blend.model.shift


def test_without_a_line_it_abstains_and_every_stage_skips_it() -> None:
    store = _store()
    blend, today = _blend(store, DAYS[30])
    predicted = blend.predict(today)
    line = today[POINTS.line_feature].to_numpy(float)
    assert np.isnan(predicted[np.isnan(line)]).all() and np.isfinite(predicted[~np.isnan(line)]).all()
    assert blend.system.ABSTAINS and systems.abstained(blend.system, predicted).sum() == np.isnan(line).sum()
    assert smoke_tested(blend) is blend  # the worker loads it: neither smoke row has a line

    # player_prop_predictions: no row where it abstained
    prices = priced(probability.probabilities(blend.model.distribution, predicted, line), line)
    rows = prediction_rows(today, "points", LINE_BLEND_V1, "1", predicted, prices, "test")
    assert len(rows) == int((~np.isnan(line)).sum()) and rows["predicted_points"].notna().all()

    # the worker's answer: null and PASS where it abstained, and the row is led by the next system
    answered = {"version": "1", "predicted_points": predicted.tolist(),
                "recommendation": prices["recommendation"].tolist(),
                **{k: prices[k].tolist() for k in ("p_over", "p_push", "p_under", "confidence")}}
    average = {**answered, "predicted_points": [10.0] * len(line), "recommendation": ["PASS"] * len(line)}
    batch = Batch(np.zeros((len(line), 1)), line, [1] * len(line), [None] * len(line), [None] * len(line))
    items = json.loads(answer_json(predict_batch({LINE_BLEND_V1: answered, MOVING_AVERAGE: average}, batch)))
    for item, has_line in zip(items, ~np.isnan(line), strict=True):
        assert item["system"] == (LINE_BLEND_V1 if has_line else MOVING_AVERAGE)
        if not has_line:
            assert item["systems"][LINE_BLEND_V1]["predicted_points"] is None
            assert item["systems"][LINE_BLEND_V1]["recommendation"] == "PASS"


def test_it_is_declared_like_the_others_and_leads_where_it_predicts() -> None:
    assert SYSTEMS[-1] == LINE_BLEND_V1 and systems.module(LINE_BLEND_V1).COMBINES
    assert systems.members_of(LINE_BLEND_V1, SYSTEMS[:-1]) == ("ensemble_v1",)
    assert systems.members_of("ensemble_v1", SYSTEMS[:-2]) == SYSTEMS[:-2]
    assert not any(systems.module(s).ABSTAINS for s in SYSTEMS[:-1])


def test_over_against_under_is_fitted_on_the_graded_lines_and_a_push_keeps_its_share() -> None:
    rng = np.random.default_rng(4)
    line = np.floor(rng.uniform(5, 30, 5000)) + rng.choice([0.0, 0.5], 5000)
    predicted = line + rng.normal(0, 2, 5000)
    actual = np.round(line + rng.normal(0, 6, 5000) + 0.8 * (predicted - line))
    spread = probability.fit("normal", actual, predicted)
    fitted = probability.fit_graded(spread, actual, predicted, line)["graded"]
    assert fitted["slope"] > 0 and fitted["rows"] == int((actual != line).sum())
    p_over, p_push, p_under = probability.probabilities({**spread, "graded": fitted}, predicted, line)
    np.testing.assert_allclose(p_over + p_push + p_under, 1.0, atol=1e-9)
    assert (p_push[line % 1 == 0.5] == 0).all() and (p_push[line % 1 == 0] > 0).all()
    assert np.corrcoef(p_over / (p_over + p_under), predicted - line)[0, 1] > 0.99
    # too few graded lines: even odds on a half line
    even = probability.fit_graded(spread, actual[:10], predicted[:10], line[:10])
    assert probability.probabilities(even, np.array([30.0]), np.array([20.5]))[0] == pytest.approx([0.5])
