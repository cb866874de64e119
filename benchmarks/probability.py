"""Benchmark: the calibrated P(over) of ``registry/probability.py`` against the shipped lines.

Why this exists: issue 13 asks for a P(over) per market a bettor can trust. Against the daily-fantasy
lines of 2024-10-22 .. 2025-01-13 the published P(over) (residual quantiles of one spread) scored a
Brier of 0.259-0.264, worse than always saying 0.5, and its call (read off the point prediction) could
contradict it. The targets: Brier < 0.25 and expected calibration error <= 0.03 for points, rebounds
and assists against the real lines.

The predictions are the script's own, so that the probability layer is measured apart from the
platform's systems: per market a scikit-learn HistGradientBoosting on the platform's shared features
(``features/build.py``, without the line) plus a dozen lagged features of the market's own stat (its
last-5/10/season means, spread, per-minute rate, the opponent's allowed mean), trained on 2021-22 ..
2022-23. The distribution and its calibration are fitted on 2023-24 (validation; it has no lines).
The line's weight in the centre (``probability.fit_line``) is fitted walk-forward: each day of
2024-10-22 .. 2025-01-13 on the lines graded before it, as the live loop would. Every line of the window
is scored (one row per player, date and book: the line the book last posted), joined on date + player,
priced on the distribution centred towards the books' median line of that player-game. A line whose
player did not play is void and not scored. P(over) is scored against "the outcome was over" (a push on
a whole line is not over), so the Brier score is proper for the published P(over).

For reference, on the same rows: the same distribution centred on the prediction alone (what the
validation fit can say without lines), and the previous method (residual quantiles, call = prediction
vs line). Prints a table per market and writes ``benchmarks/results/probability.json``.

Run from the repository root:  python benchmarks/probability.py   (4 CPU minutes)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from features.build import build_features  # noqa: E402
from features.definitions import FEATURE_NAMES  # noqa: E402
from registry import probability  # noqa: E402
from registry.points_model import Bundle, residual_quantiles  # noqa: E402
from registry.predictions import recommendation  # noqa: E402
from warehouse.ingest import expand_sources, read_box_scores, read_lines  # noqa: E402

BOX_GLOB = ROOT / "data" / "nba" / "box_scores" / "player_logs_202[1-4]-2[2-5].csv.gz"
LINES_DIR = ROOT / "data" / "nba" / "dfs_lines_2024-25"
RESULTS = ROOT / "benchmarks" / "results" / "probability.json"

TRAIN_SEASONS = ("2021-22", "2022-23")
VALIDATION_SEASON = "2023-24"
TEST_START, TEST_END = dt.date(2024, 10, 22), dt.date(2025, 1, 13)
TARGET_BRIER, TARGET_ECE = 0.25, 0.03
KEYS = ("player_id", "game_id", "game_date", "season")
LINE_FEATURES = ("vegas_points_line", "line_minus_avg_last_10")  # the stand-in predicts without the line

# market -> (box-score columns summed into its outcome, distribution, line market key or None)
MARKETS = {
    "points": (("points",), "normal", "player_points"),
    "rebounds": (("reb",), "negative_binomial", "player_rebounds"),
    "assists": (("ast",), "negative_binomial", "player_assists"),
    "threes": (("fg3m",), "negative_binomial", None),
    "pra": (("points", "reb", "ast"), "normal", None),
}


def lagged_features(box: pd.DataFrame, target: pd.Series) -> pd.DataFrame:
    """Features of each player-game from the games before it only (point in time)."""
    frame = box[["player_id", "game_id", "game_date", "season", "team", "opponent", "is_home", "minutes"]].copy()
    frame["y"] = target.to_numpy(float)
    frame = frame.sort_values(["player_id", "game_date"], kind="stable")
    past = frame.groupby("player_id")
    prior_y, prior_min = past["y"].shift(1), past["minutes"].shift(1)
    by_player = frame["player_id"]
    out = pd.DataFrame(index=frame.index)
    for n in (5, 10):
        out[f"avg_{n}"] = prior_y.groupby(by_player).rolling(n, min_periods=1).mean().droplevel(0)
    out["std_10"] = prior_y.groupby(by_player).rolling(10, min_periods=2).std().droplevel(0)
    out["last"] = prior_y
    out["ewm_10"] = prior_y.groupby(by_player).transform(lambda s: s.ewm(span=10, ignore_na=True).mean())
    sum_y = prior_y.groupby(by_player).rolling(10, min_periods=1).sum().droplevel(0)
    sum_min = prior_min.groupby(by_player).rolling(10, min_periods=1).sum().droplevel(0)
    out["per_minute_10"] = sum_y / sum_min.where(sum_min > 0)
    out["minutes_10"] = prior_min.groupby(by_player).rolling(10, min_periods=1).mean().droplevel(0)
    out["minutes_last"] = prior_min
    season_past = frame.groupby(["player_id", "season"])["y"]
    out["season_avg"] = season_past.transform(lambda s: s.shift(1).expanding().mean())
    out["season_games"] = season_past.cumcount()
    rest = pd.to_datetime(frame["game_date"]).groupby(by_player).diff().dt.days
    out["rest_days"] = rest.clip(upper=10)
    out["is_home"] = frame["is_home"].astype(float)
    # what the opponent allowed: the team totals scored against it over its last 10 games
    totals = frame.groupby(["game_id", "team", "opponent", "game_date"], as_index=False)["y"].sum()
    totals = totals.sort_values("game_date", kind="stable")
    totals["allowed_10"] = totals.groupby("opponent")["y"].transform(
        lambda s: s.shift(1).rolling(10, min_periods=1).mean())
    allowed = totals[["game_id", "opponent", "allowed_10"]]
    out["opponent_allowed_10"] = frame[["game_id", "opponent"]].merge(
        allowed, on=["game_id", "opponent"], how="left")["allowed_10"].to_numpy()
    out["y"] = frame["y"]
    out[list(KEYS)] = frame[list(KEYS)]
    return out[out["last"].notna()]


def shared_features(box: pd.DataFrame) -> pd.DataFrame:
    """The platform's 33 features of every player-game but the line's two: role, form, schedule, pace,
    lineup (``features/build.py``), so the stand-in predictions are about as good as a system's."""
    features = build_features(box)
    return features[[*KEYS, *(f for f in FEATURE_NAMES if f not in LINE_FEATURES)]]


def predictions(features: pd.DataFrame) -> pd.DataFrame:
    """The model's prediction of every validation and test row (trained on the train seasons)."""
    columns = [c for c in features.columns if c not in ("y", *KEYS)]
    train = features[features["season"].isin(TRAIN_SEASONS)]
    model = HistGradientBoostingRegressor(max_iter=300, learning_rate=0.05, max_leaf_nodes=31,
                                          min_samples_leaf=50, random_state=0)
    model.fit(train[columns], train["y"])
    later = features[~features["season"].isin(TRAIN_SEASONS)].copy()
    later["predicted"] = np.maximum(model.predict(later[columns]), 0.0)
    return later[["player_id", "game_date", "season", "y", "predicted", "avg_10"]]


def market_lines(line_key: str, box: pd.DataFrame) -> pd.DataFrame:
    """The shipped lines of one market matched to player ids by ``read_lines`` (same checks, same strict
    name matching, the latest snapshot of a book winning). ``read_lines`` here reads ``player_points``
    rows, so each market's rows are read through a relabelled copy of the snapshots."""
    with tempfile.TemporaryDirectory() as folder:
        for path in expand_sources(LINES_DIR):
            raw = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
            raw = raw[raw["market"] == line_key].assign(market="player_points")
            raw.to_csv(Path(folder) / path.name.removesuffix(".gz"), index=False)
        lines = read_lines(folder, box).lines
    return lines[["game_date", "player_id", "bookmaker", "line"]]


def graded(p_over: np.ndarray, p_under: np.ndarray, actual: np.ndarray, line: np.ndarray,
           call: np.ndarray | None = None) -> dict:
    """Scores of one method's P(over) and calls on rows with a line (the call from ``decide`` unless
    given); ``won`` is 1/0 per graded call, NaN on PASS or a push."""
    confidence = None
    if call is None:
        call, confidence = probability.decide(p_over, p_under)
    over = (actual > line).astype(float)
    won = np.where((call == "PASS") | (actual == line), np.nan,
                   np.where(call == "OVER", actual > line, actual < line))
    called = np.isfinite(won)
    wins, n = int(np.nansum(won)), int(called.sum())
    low, high = probability.wilson_interval(wins, n)
    out = {"brier": probability.brier(p_over, over), "ece": probability.expected_calibration_error(p_over, over),
           "calls": n, "hit_rate": wins / n if n else float("nan"), "hit_rate_wilson": [low, high],
           "contradicting_calls": int(((call == "OVER") & (p_over < p_under)).sum()
                                      + ((call == "UNDER") & (p_under < p_over)).sum())}
    if confidence is not None:
        buckets = probability.hit_rate_by_confidence(confidence, won)
        out.update({"by_confidence": buckets, "top_bucket": buckets[-1],
                    "reliability": probability.reliability(p_over, over)})
    return out


def brier_interval_by_day(p_over: np.ndarray, actual: np.ndarray, line: np.ndarray, game_date: np.ndarray,
                          resamples: int = 2000) -> list[float]:
    """A 95% bootstrap interval of the Brier score, resampling whole days (a day's lines share its
    games and its line weight, so rows are not independent)."""
    error = (p_over - (actual > line)) ** 2
    _, day = np.unique(game_date, return_inverse=True)
    sums, counts = np.bincount(day, error), np.bincount(day)
    picks = np.random.default_rng(0).integers(0, len(sums), (resamples, len(sums)))
    scores = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)
    return [float(np.quantile(scores, 0.025)), float(np.quantile(scores, 0.975))]


def evaluate(market: str, box: pd.DataFrame, shared: pd.DataFrame) -> dict:
    columns, distribution, line_key = MARKETS[market]
    market_features = lagged_features(box, box[list(columns)].sum(axis=1))
    rows = predictions(market_features.merge(shared, on=list(KEYS), how="left"))
    validation = rows[rows["season"] == VALIDATION_SEASON]
    test = rows[(rows["game_date"] >= TEST_START) & (rows["game_date"] <= TEST_END)]
    started = time.perf_counter()
    params = probability.fit(distribution, validation["y"].to_numpy(), validation["predicted"].to_numpy())
    fit_seconds = time.perf_counter() - started
    json.dumps(params)  # what a logged model stores
    result = {"distribution": distribution, "validation_rows": len(validation), "fit_seconds": fit_seconds,
              "params": {k: v for k, v in params.items() if k != "calibration"},
              "calibration_points": len(params["calibration"]["x"]),
              "test_mae": float(np.mean(np.abs(test["y"] - test["predicted"]))),
              "test_mae_last_10": float(np.mean(np.abs(test["y"] - test["avg_10"])))}
    if line_key is None:
        return result

    lines = market_lines(line_key, box)
    scored = test.merge(lines, on=["game_date", "player_id"], how="inner").sort_values("game_date", kind="stable")
    # the books' consensus of a player-game centres its one distribution; each book's line is priced on it
    scored["consensus"] = scored.groupby(["game_date", "player_id"])["line"].transform("median")
    actual, predicted, line, consensus = (scored[c].to_numpy(float) for c in ("y", "predicted", "line", "consensus"))
    started = time.perf_counter()
    p_over, p_push, p_under = probability.walk_forward(params, scored["game_date"].to_numpy(), actual, predicted,
                                                       line, consensus)
    walk_seconds = time.perf_counter() - started
    around_prediction = {**params, "line": {"weight": 0.0, "shift": 0.0}}
    p_alone = probability.probabilities(around_prediction, predicted, line)
    final = probability.fit_line(params, actual, predicted, line, consensus)

    old_p = Bundle({"residual_quantiles": residual_quantiles(validation["y"], validation["predicted"])},
                   None).p_over(predicted, line)
    whole = line == np.round(line)
    new = graded(p_over, p_under, actual, line)
    result.update({
        "lines": len(scored), "whole_number_lines": int(whole.sum()), "pushes": int((actual == line).sum()),
        "mean_p_push_whole_line": float(np.mean(p_push[whole])) if whole.any() else 0.0,
        "observed_over_rate": float(np.mean(actual > line)),
        "brier_always_half": probability.brier(np.full(len(line), 0.5), (actual > line).astype(float)),
        "line_mae": float(np.mean(np.abs(actual - line))),
        "prediction_mae_on_lines": float(np.mean(np.abs(actual - predicted))),
        "walk_forward_seconds": walk_seconds, "line_fit_at_end": final.get("line"),
        **new, "brier_interval_by_day": brier_interval_by_day(p_over, actual, line, scored["game_date"].to_numpy()),
        "hit_rate_no_band": graded(p_over, p_under, actual, line,
                                   probability.decide(p_over, p_under, band=0.0)[0])["hit_rate"],
        "around_prediction_only": graded(p_alone[0], p_alone[2], actual, line),
        "previous": graded(old_p, 1.0 - old_p, actual, line, recommendation(predicted, line)),
        "meets_targets": bool(new["brier"] < TARGET_BRIER and new["ece"] <= TARGET_ECE),
    })
    for method in ("around_prediction_only", "previous"):
        result[method] = {k: v for k, v in result[method].items() if k in ("brier", "ece", "calls", "hit_rate",
                                                                           "contradicting_calls")}
    return result


def main() -> None:
    started = time.perf_counter()
    box = read_box_scores(BOX_GLOB)
    shared = shared_features(box)
    results = {market: evaluate(market, box, shared) for market in MARKETS}
    print(f"{'market':<9} {'lines':>6} {'Brier':>6} {'95% by day':>15} {'ECE':>6} {'calls':>6} {'hit':>6} "
          f"{'top bucket: n, hit [Wilson 95%]':<33} {'pred-only Brier/ECE':>19} {'old Brier/ECE':>14} "
          f"{'old contra':>10}")
    for market, r in results.items():
        if "lines" not in r:
            print(f"{market:<9} {'-':>6}  no shipped lines; test MAE {r['test_mae']:.3f} "
                  f"(last-10 {r['test_mae_last_10']:.3f})")
            continue
        top, alone, old = r["top_bucket"], r["around_prediction_only"], r["previous"]
        bucket = (f">={top['low']:.2f}: {top['n']}, {top['hit_rate']:.3f} "
                  f"[{top['wilson_low']:.3f}, {top['wilson_high']:.3f}]")
        low, high = r["brier_interval_by_day"]
        print(f"{market:<9} {r['lines']:>6} {r['brier']:>6.4f} [{low:.4f}, {high:.4f}] {r['ece']:>6.4f} "
              f"{r['calls']:>6} {r['hit_rate']:>6.3f} "
              f"{bucket:<33} {alone['brier']:>12.4f}/{alone['ece']:.4f} {old['brier']:>7.4f}/{old['ece']:.4f} "
              f"{old['contradicting_calls']:>10}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
        "cpus": os.cpu_count(), "seconds": round(time.perf_counter() - started, 1),
        "targets": {"brier_below": TARGET_BRIER, "ece_at_most": TARGET_ECE}, "no_bet_band": probability.NO_BET_BAND,
        "markets": results}, indent=2, default=float))
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
