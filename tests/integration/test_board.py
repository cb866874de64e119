"""The analyst's pages in a real browser: headless Chromium (Debian's package) driven by Playwright,
against the worker served on loopback over a warehouse backfilled from the shipped 2024-25 data,
with prediction, grade, monitoring and alert rows written the way the daily job writes them.

Screenshots of every page go to ``/tmp/board-shots/`` (outside the checkout) for a person to look at.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pandas as pd
import pytest

import settings
from contracts import (
    ALERTS_SCHEMA,
    BOX_SCORES_SCHEMA,
    DATA_CHECKS_SCHEMA,
    MONITORING_SCHEMA,
    PLAYERS_OUT_SCHEMA,
    PREDICTION_GRADES_SCHEMA,
    PREDICTIONS_SCHEMA,
)
from features.backfill import backfill
from features.store import read_store
from serving import pages
from serving.local import running
from serving.service import create_coordinator_app
from serving.worker import create_app
from tests.conftest import SEASON_2024_25
from warehouse import connect

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path("/tmp/board-shots")
TOKEN = "board-token"
DAY = dt.date(2025, 1, 10)  # the board's slate: 7 games
GRADED_DAYS = (dt.date(2025, 1, 8), dt.date(2025, 1, 9))
SYSTEMS_SHOWN = ("moving_average", "xgboost_v1", "ensemble_v1")
MARKUP = "<script>window.__xss = 1</script>Evil <b>Name</b>"
EVIL_ID = 1628369  # Jayson Tatum, renamed in the fixture's copy of the box scores


def recommendation(predicted: np.ndarray, line: np.ndarray) -> np.ndarray:
    """The fixture's calls: the side the prediction is on, PASS without a line."""
    predicted, line = np.asarray(predicted, float), np.asarray(line, float)
    return np.where(np.isnan(line), "PASS", np.where(predicted > line, "OVER", "UNDER"))


def _p_over(predicted: np.ndarray, line: np.ndarray, spread: float) -> np.ndarray:
    return 1 / (1 + np.exp(-(predicted - line) / spread))


def predictions_for(features: pd.DataFrame, box: pd.DataFrame, day: dt.date) -> pd.DataFrame:
    """Points predictions for every slate player with a points line, rebounds for the regulars: the
    shape the coordinator writes, the numbers a simple model would give."""
    rows = []
    slate = features[features["game_date"] == day]
    history = box[box["game_date"] < day].sort_values("game_date").groupby("player_id").tail(10)
    rebounds = history.groupby("player_id")["reb"].mean()
    minutes = history.groupby("player_id")["minutes"].mean()
    for offset, system in enumerate(SYSTEMS_SHOWN):
        points = slate["points_avg_last_10"].fillna(8.0).to_numpy() + 0.6 * offset - 0.4
        line = slate["vegas_points_line"].to_numpy(float)
        rows.append(pd.DataFrame({
            "game_date": day, "game_id": slate["game_id"].to_numpy(), "player_id": slate["player_id"].to_numpy(),
            "market": "points", "system": system, "model_version": str(offset + 1), "predicted_points": points,
            "line": line, "recommendation": recommendation(points, line),
            "p_over": np.where(np.isnan(line), np.nan, _p_over(points, line, 5.0)), "source": "daily"}))
        regulars = slate[slate["player_id"].map(minutes).fillna(0) >= 24]
        reb = regulars["player_id"].map(rebounds).to_numpy(float) + 0.3 * offset
        reb_line = np.floor(reb) + 0.5 - 0.5 * (regulars["player_id"].to_numpy() % 2)
        rows.append(pd.DataFrame({
            "game_date": day, "game_id": regulars["game_id"].to_numpy(), "player_id": regulars["player_id"].to_numpy(),
            "market": "rebounds", "system": system, "model_version": str(offset + 1), "predicted_points": reb,
            "line": reb_line, "recommendation": recommendation(reb, reb_line), "p_over": _p_over(reb, reb_line, 2.0),
            "source": "daily"}))
    frame = pd.concat(rows, ignore_index=True)
    frame["p_under"] = np.where(frame["p_over"].isna(), np.nan, 1 - frame["p_over"])
    frame["p_push"] = np.where(frame["p_over"].isna(), np.nan, 0.0)
    frame["confidence"] = np.where(frame["recommendation"] == "OVER", frame["p_over"],
                                   np.where(frame["recommendation"] == "UNDER", frame["p_under"], np.nan))
    frame["created_at"] = pd.Timestamp(day, tz="UTC")
    return frame


def grades_for(predictions: pd.DataFrame, box: pd.DataFrame) -> pd.DataFrame:
    """Each prediction graded against the box score, as ``monitoring/grading.py`` does."""
    actual = box.assign(rebounds=box["reb"])[["player_id", "game_date", "points", "rebounds"]]
    merged = predictions.merge(actual, on=["player_id", "game_date"], how="left")
    value = np.where(merged["market"] == "points", merged["points"], merged["rebounds"]).astype(float)
    played = ~np.isnan(value)
    decided = played & (merged["recommendation"] != "PASS")
    over = value > merged["line"]
    won = np.where(merged["recommendation"] == "OVER", over, value < merged["line"])
    result = np.where(value == merged["line"], "push", np.where(won, "win", "loss"))
    return pd.DataFrame({
        "game_date": merged["game_date"], "game_id": merged["game_id"], "player_id": merged["player_id"],
        "market": merged["market"], "system": merged["system"], "model_version": merged["model_version"],
        "outcome": np.where(played, "graded", "void"), "predicted_points": merged["predicted_points"],
        "actual_points": np.where(played, value, np.nan),
        "abs_error": np.where(played, np.abs(value - merged["predicted_points"]), np.nan), "line": merged["line"],
        "recommendation": merged["recommendation"], "ou_result": np.where(decided, result, None),
        "p_over": merged["p_over"], "graded_at": pd.Timestamp(DAY, tz="UTC")})


def monitoring_rows() -> pd.DataFrame:
    """Three weeks of rolling metrics per system and version, and the data metrics of the last day."""
    rows = []
    for i, day in enumerate(pd.date_range(DAY - dt.timedelta(days=21), DAY - dt.timedelta(days=1)).date):
        for offset, system in enumerate(SYSTEMS_SHOWN):
            for metric, period, value in (("mae", "7d", 4.9 - 0.1 * offset + 0.02 * np.sin(i)),
                                          ("hit_rate", "30d", 50.0 + offset + np.cos(i))):
                rows.append({"game_date": day, "market": "points", "system": system,
                             "model_version": str(offset + 1), "period": period, "metric": metric, "value": value})
    for metric, value in (("freshness_days", 1.0), ("psi_max", 0.41), ("missing_input_share", 0.012)):
        rows.append({"game_date": DAY - dt.timedelta(days=1), "market": "points", "system": "data",
                     "model_version": "v", "period": "day", "metric": metric, "value": value})
    return pd.DataFrame(rows).assign(created_at=pd.Timestamp(DAY, tz="UTC"))


def record_promotion(tracking_uri: str, folder: Path) -> None:
    """A promotion event of a registered model, recorded as ``registry/promotion.py`` records one."""
    from mlflow.tracking import MlflowClient

    from registry.promotion import Event, _record

    client = MlflowClient(tracking_uri)
    client.create_registered_model("xgboost_v1")
    for _ in range(2):
        client.create_model_version("xgboost_v1", source=folder.as_uri())
    _record(client, Event("promote", "xgboost_v1", "2", "1", "analyst", "2025-01-09T10:00:00+00:00",
                          reason="beat production on the last 14 game days",
                          figures={"champion_mae": 4.61, "challenger_mae": 4.52, "games": 1800}))


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The worker on loopback over a backfilled warehouse holding a slate, predictions, grades,
    monitoring metrics, an alert, a held day, players out and a promotion in the registry."""
    import mlflow

    root = tmp_path_factory.mktemp("board")
    raw = pd.read_csv(SEASON_2024_25, dtype=str)
    raw = raw[raw["GAME_DATE"] <= str(DAY)]
    raw.loc[raw["PLAYER_ID"] == str(EVIL_ID), "PLAYER_NAME"] = MARKUP
    raw.to_csv(root / "box.csv", index=False)
    url = f"duckdb:///{root / 'warehouse.duckdb'}"
    warehouse = connect(url)
    backfill(warehouse, root / "box.csv", settings.LINES_DEFAULT, GRADED_DAYS[0], DAY, progress=False)
    features = read_store(warehouse, GRADED_DAYS[0], DAY)
    box = warehouse.read(BOX_SCORES_SCHEMA, date_range=(DAY - dt.timedelta(days=60), DAY))
    predictions = pd.concat([predictions_for(features, box, day) for day in (*GRADED_DAYS, DAY)], ignore_index=True)
    warehouse.write(PREDICTIONS_SCHEMA, predictions)
    warehouse.write(PREDICTION_GRADES_SCHEMA,
                    grades_for(predictions[predictions["game_date"] != DAY], box))
    warehouse.write(MONITORING_SCHEMA, monitoring_rows())
    warehouse.write(ALERTS_SCHEMA, pd.DataFrame([{
        "game_date": DAY - dt.timedelta(days=1), "rule": "hit_rate_low", "market": "points", "system": "xgboost_v1",
        "value": 47.1, "threshold": 48.0, "message": "30-day hit rate 47.1% < 48% over 230 calls",
        "created_at": pd.Timestamp(DAY, tz="UTC"), "delivery": "unsent", "attempts": 0, "attempted_at": None,
        "delivery_error": None}]))
    warehouse.write(DATA_CHECKS_SCHEMA, pd.DataFrame([{
        "game_date": DAY - dt.timedelta(days=3), "status": "held", "problems": "game 0022400500: BOS minutes 139",
        "checked_at": pd.Timestamp(DAY, tz="UTC")}]))
    slate = features[features["game_date"] == DAY]
    out = slate.groupby("team").head(1)[["player_id", "team"]].head(2)
    warehouse.write(PLAYERS_OUT_SCHEMA, out.assign(game_date=DAY, reason="ankle"))

    tracking = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", tracking)
        mp.setenv("MLFLOW_ARTIFACT_ROOT", (root / "artifacts").as_uri())
        mlflow.set_tracking_uri(tracking)
        record_promotion(tracking, root)
        with running(create_app(warehouse=warehouse, token=TOKEN, poll_seconds=0)) as base:
            yield {"url": base, "warehouse": warehouse, "predictions": predictions, "out": out}


def expected_players(platform: dict, market: str, min_edge: float | None = None) -> set[int]:
    """The board's rows as the data says: one per player with a prediction of the market, the lead
    system's edge at least ``min_edge`` in size."""
    rows = platform["predictions"]
    rows = rows[(rows["game_date"] == DAY) & (rows["market"] == market) & (rows["system"] == "ensemble_v1")]
    if min_edge is not None:
        edge = (rows["predicted_points"] - rows["line"]).abs()
        rows = rows[edge.round(2) >= min_edge]
    return set(rows["player_id"].astype(int))


# --- without a browser ----------------------------------------------------------------------------



def test_pages_read_without_a_token_and_writes_still_need_one(platform: dict) -> None:
    with httpx.Client(base_url=platform["url"], timeout=60) as client:
        for path in (f"/board?date={DAY}", f"/board.csv?date={DAY}", f"/results?date={GRADED_DAYS[1]}",
                     "/performance?market=points&end=2025-01-09", "/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 200, path
        assert client.post("/reload").status_code == 401
        assert client.get("/").json()["systems"] == {}  # API clients keep the JSON index
        assert "/board" in client.get("/", headers={"accept": "text/html"}).text
        bad = client.get(f"/board?date={DAY}&min_edge=lots")
        assert bad.status_code == 422 and "min_edge is &#39;lots&#39;, expected a number" in bad.text
        latest = client.get("/board?market=rebounds", follow_redirects=False)  # no slate ahead: the latest
        assert latest.status_code == 303 and latest.headers["location"].startswith(f"/board?date={DAY}&market=rebounds")
        schema = client.get("/openapi.json").json()
        assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert schema["paths"]["/reload"]["post"]["security"] == [{"bearer": []}]
        assert {"413", "422", "503"} <= set(schema["paths"]["/predict"]["post"]["responses"])
        assert "401" in schema["paths"]["/reload"]["post"]["responses"]


def test_the_default_date_is_the_next_slate_else_the_latest(platform: dict) -> None:
    warehouse = platform["warehouse"]
    assert pages.nearest_date(warehouse, PREDICTIONS_SCHEMA, "points", dt.date(2025, 1, 7)) == GRADED_DAYS[0]
    assert pages.nearest_date(warehouse, PREDICTIONS_SCHEMA, "points", dt.date(2025, 3, 1)) == DAY
    assert pages.nearest_date(warehouse, PREDICTIONS_SCHEMA, "threes", DAY) is None


def test_a_store_from_before_markets_reads_as_points(tmp_path: Path) -> None:
    """Rows written without a market column (this checkout's contracts, or an older store) are points."""
    old = connect(f"duckdb:///{tmp_path / 'old.duckdb'}")
    old.write(PLAYERS_OUT_SCHEMA, pd.DataFrame([{"game_date": DAY, "player_id": 1, "team": "BOS", "reason": "x"}]))
    rows = pages.read_columns(old, PLAYERS_OUT_SCHEMA, ["game_date", "player_id", "market"], (DAY, DAY))
    assert rows["market"].tolist() == ["points"]


# --- in the browser ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        missing = f"{CHROMIUM} is not installed: apt-get install chromium"
        if os.environ.get("CI"):
            pytest.fail(f"{missing}; CI must run the browser tests (.ci/run installs it)", pytrace=False)
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture
def page(browser, platform: dict) -> Iterator[object]:
    """A page whose every request must stay on 127.0.0.1 (others are aborted and recorded), and whose
    console errors and page errors are recorded."""
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    left, errors = [], []

    def only_loopback(route) -> None:
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    tab = context.new_page()
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.base, tab.left, tab.errors = platform["url"], left, errors
    yield tab
    context.close()
    assert not left, f"requests left 127.0.0.1: {left}"
    assert not errors, f"the browser reported errors: {errors}"


def table_rows(tab) -> list[list[str]]:
    """The board as shown: each cell's text, or for a chart its accessible label (what it draws)."""
    return tab.eval_on_selector_all("#board tbody tr", """rows => rows.map(r => [...r.cells].map(td => {
        const svg = td.querySelector('svg');
        return td.classList.contains('chart') ? (svg ? svg.getAttribute('aria-label') : '') : td.innerText.trim();
    }))""")


def shown_players(tab, platform: dict) -> list[str]:
    return [row[0] for row in table_rows(tab)]


def names_of(platform: dict, ids: set[int]) -> set[str]:
    box = platform["warehouse"].read(BOX_SCORES_SCHEMA, date_range=(DAY - dt.timedelta(days=60), DAY))
    return set(box[box["player_id"].isin(ids)].drop_duplicates("player_id")["player_name"])


def test_the_board_shows_one_row_per_slate_player_and_filters_sorts_and_downloads(page, platform: dict) -> None:
    tab = page
    tab.goto(f"{tab.base}/board?date={DAY}&market=points")
    shown = shown_players(tab, platform)
    assert len(shown) == len(set(shown)) == len(expected_players(platform, "points"))
    assert set(shown) == names_of(platform, expected_players(platform, "points"))
    assert tab.locator("#board svg.form rect").count() > 0 and tab.locator("#board svg.spark polyline").count() > 0
    assert tab.locator("section.games .game").count() == 7
    out_names = names_of(platform, set(platform["out"]["player_id"].astype(int)))
    assert all(tab.locator("section.games").get_by_text(name).count() for name in out_names)
    tab.screenshot(path=str(SHOTS / "board-points.png"), full_page=False)

    tab.select_option("select[name=market]", "rebounds")
    tab.click("button[type=submit]")
    tab.wait_for_url("**market=rebounds**")
    rebounds = shown_players(tab, platform)
    assert set(rebounds) == names_of(platform, expected_players(platform, "rebounds"))
    assert 0 < len(rebounds) < len(shown)

    tab.select_option("select[name=market]", "points")
    tab.fill("input[name=min_edge]", "3")
    tab.click("button[type=submit]")
    tab.wait_for_url("**min_edge=3**")
    edged = shown_players(tab, platform)
    assert set(edged) == names_of(platform, expected_players(platform, "points", 3.0))
    assert 0 < len(edged) < len(shown)

    tab.click("#board thead a:text('Edge')")
    tab.wait_for_url("**sort=edge**")
    edges = [float(row[columns(tab).index("Edge")]) for row in table_rows(tab)]
    assert edges == sorted(edges, reverse=True)
    tab.screenshot(path=str(SHOTS / "board-filtered.png"), full_page=True)

    csv_text = tab.request.get(tab.base + tab.get_attribute("#csv", "href")).text()
    downloaded = list(csv.reader(io.StringIO(csv_text)))
    assert downloaded[0] == columns(tab)
    assert downloaded[1:] == table_rows(tab)


def columns(tab) -> list[str]:
    return [h.strip(" ▲▼") for h in tab.eval_on_selector_all("#board thead th", "hs => hs.map(h => h.innerText)")]


def test_a_player_name_with_markup_shows_as_text(page, platform: dict) -> None:
    tab = page
    tab.goto(f"{tab.base}/board?date={DAY}&market=points&sort=player&order=asc")
    assert MARKUP in shown_players(tab, platform)
    assert tab.evaluate("window.__xss") is None
    assert tab.locator("#board td.player b").count() == 0


def test_results_and_performance_render_with_their_charts(page, platform: dict) -> None:
    tab = page
    tab.goto(f"{tab.base}/results?date={GRADED_DAYS[1]}&market=points")
    summary = tab.eval_on_selector_all("#summary tbody tr", "rows => rows.map(r => r.cells[0].innerText)")
    assert summary == ["ensemble_v1", "xgboost_v1", "moving_average"]
    graded = platform["predictions"]
    graded = graded[(graded["game_date"] == GRADED_DAYS[1]) & (graded["market"] == "points")]
    assert tab.locator("#results tbody tr").count() == graded["player_id"].nunique()
    assert tab.locator("figure.plot svg circle").count() > len(graded) // 3  # hit rates and the scatter
    assert set(tab.eval_on_selector_all("#results td.result", "cs => cs.map(c => c.innerText)")) <= {
        "win", "loss", "push", "void", "no call"}
    tab.screenshot(path=str(SHOTS / "results.png"), full_page=False)

    tab.goto(f"{tab.base}/performance?market=points&end={DAY - dt.timedelta(days=1)}&days=30")
    assert tab.locator("figure.plot svg polyline").count() >= 2 * len(SYSTEMS_SHOWN)  # MAE and hit-rate lines
    assert tab.locator("#buckets tbody tr").count() == len(SYSTEMS_SHOWN) * 4
    assert "beat production on the last 14 game days" in tab.inner_text("#promotions")
    assert "hit_rate_low" in tab.inner_text("#alerts")
    assert "results 1 day(s) old" in tab.inner_text("section.cards")
    tab.screenshot(path=str(SHOTS / "performance.png"), full_page=True)


def test_the_api_docs_render_without_internet(page, platform: dict) -> None:
    tab = page
    tab.goto(f"{tab.base}/docs")
    tab.wait_for_selector(".swagger-ui .info .title")
    assert tab.locator("button.authorize").count() == 1  # the bearer token's security scheme
    assert tab.locator(".opblock-summary-path").count() >= 4
    tab.screenshot(path=str(SHOTS / "docs.png"), full_page=False)
    tab.goto(f"{tab.base}/redoc")
    tab.wait_for_selector("redoc h1, .api-content h1")
    assert "prediction worker" in tab.inner_text("redoc")
    tab.screenshot(path=str(SHOTS / "redoc.png"), full_page=False)
    with running(create_coordinator_app(platform["url"], platform["warehouse"], token=TOKEN)) as coordinator:
        tab.goto(f"{coordinator}/docs")
        tab.wait_for_selector(".swagger-ui .info .title")
        assert "coordinator" in tab.inner_text(".swagger-ui .info .title")
        assert tab.locator("button.authorize").count() == 1
    tab.goto(tab.base)
    assert tab.locator("a[href='/board']").count() >= 1
    tab.screenshot(path=str(SHOTS / "home.png"), full_page=False)
