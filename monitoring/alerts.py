"""Alert rules over the monitoring metrics: an ``alerts`` row each, a webhook POST, a list for the exit code.

Every threshold lives in ``Thresholds``; the defaults are the values the README documents. Rules:

- ``mae_above_test``: a model version's rolling 7-day MAE is above its own test MAE (from its
  registered run) by more than ``mae_margin`` points, over at least ``min_graded`` player-games;
- ``hit_rate_low``: its hit rate against the lines over ``hit_rate_period`` is below
  ``min_hit_rate`` percent, over at least ``min_calls`` decided calls;
- ``drift``: the largest feature PSI of the last 7 days' rows is above ``max_psi``;
- ``day_missing``: a date of the schedule before the day has no results ingested;
- ``stale_results``: the latest results are more than ``max_freshness_days`` old, in season (the
  first days of a season have only last season's results and are not stale);
- ``worker_unavailable``: the slate could not be predicted through the worker (it could not be
  reached, served no system or failed batches); the daily job raises it (``worker_alert``).

Each alert row carries its webhook delivery: ``pending`` until a POST succeeds (``delivered``). A
failed POST is reported in the outcome, never raised, and tried again by later runs, each run POSTing
every pending alert whose wait is over (``DELIVERY_BACKOFF``, doubled after each failure) in one
message, until ``DELIVERY_ATTEMPTS`` tries have failed (``given_up``). A rerun of the same day stores
the same rows and POSTs nothing already delivered, so a person is not notified twice.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from urllib.parse import urlsplit

import httpx
import numpy as np
import pandas as pd

import settings
from contracts import (
    ALERTS_SCHEMA,
    ALL_MARKETS,
    BOX_SCORES_SCHEMA,
    DATA_SYSTEM,
    DELIVERED,
    GIVEN_UP,
    PENDING,
    PERIODS,
    SCHEDULE_SCHEMA,
    UNSENT,
    WORKER_SYSTEM,
)
from features.slate import season_of
from markets import market
from monitoring.metrics import LOOKBACK_DAYS, worst_feature
from monitoring.store import write_changed
from warehouse import Warehouse

WEBHOOK_TIMEOUT_SECONDS = 10.0
MISSING_DAYS_SHOWN = 5
DELIVERY_ATTEMPTS = 6  # webhook POSTs an alert gets, at most one per run, before it is given up
DELIVERY_BACKOFF = pd.Timedelta(minutes=30)  # the wait after an alert's first failed POST; doubled after each next
DELIVERY_COLUMNS = ("delivery", "attempts", "attempted_at", "delivery_error")


class AlertConfigError(ValueError):
    """A threshold or webhook setting that cannot work; the message names it and its value."""


@dataclass(frozen=True)
class Thresholds:
    mae_margin: float = 0.5  # points above the version's own test MAE
    min_graded: int = 300  # player-games in the 7 days before the MAE rule judges
    min_hit_rate: float = 48.0  # percent of decided calls
    min_calls: int = 200
    hit_rate_period: str = "30d"
    # PSI of a 7-day window of player-game rows, which share their team's values, runs higher than
    # the textbook 0.25: over 2024-25 against 2021-24 the median was 0.37 and the 90th percentile 1.2;
    # 2.0 fires on the opening two weeks (lineup features restart) and right after the All-Star break
    max_psi: float = 2.0
    max_freshness_days: int = 8  # longer than the All-Star break, the longest gap between game days

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "hit_rate_period":
                if value not in PERIODS:
                    raise AlertConfigError(f"hit_rate_period is {value!r}; expected one of {', '.join(PERIODS)}")
            elif not isinstance(value, int | float) or isinstance(value, bool) or value < 0 or np.isnan(value):
                raise AlertConfigError(f"{f.name} is {value!r}; expected a number >= 0")
        if self.min_hit_rate > 100:
            raise AlertConfigError(f"min_hit_rate is {self.min_hit_rate!r}; expected a percentage <= 100")


@dataclass(frozen=True)
class Alert:
    game_date: dt.date
    rule: str
    market: str  # a market's name, or contracts.ALL_MARKETS for the data rules
    system: str
    value: float
    threshold: float
    message: str

    def line(self) -> str:
        where = self.system if self.market == ALL_MARKETS else f"{self.market} {self.system}"
        return f"{self.game_date} {self.rule} [{where}]: {self.message}"


@dataclass
class AlertOutcome:
    alerts: list[Alert]
    notified: int  # alerts delivered this time (this day's and earlier days' pending ones)
    webhook_error: str | None
    pending: int = 0  # alerts still to deliver on a later run
    given_up: int = 0  # alerts whose last allowed POST failed this time


def _latest(metrics: pd.DataFrame, period: str, metric: str) -> pd.DataFrame:
    """One row per market's system-version: its latest value of ``metric`` over ``period``."""
    rows = metrics[(metrics["period"] == period) & (metrics["metric"] == metric)]
    return rows.sort_values("game_date").drop_duplicates(SERIES, keep="last")


SERIES = ["market", "system", "model_version"]


def _model_values(metrics: pd.DataFrame, period: str, metric: str, count: str) -> pd.DataFrame:
    values = _latest(metrics, period, metric)[[*SERIES, "game_date", "value"]]
    counts = _latest(metrics, period, count)[[*SERIES, "value"]].rename(columns={"value": "n"})
    joined = values.merge(counts, on=SERIES)
    return joined[(joined["system"] != DATA_SYSTEM) & joined["value"].notna()]


def _worst_per_system(candidates: list[tuple[float, Alert]]) -> list[Alert]:
    """The ``alerts`` key has no version: of several versions of a market's system, keep the worst."""
    worst: dict[tuple[str, str], tuple[float, Alert]] = {}
    for excess, alert in candidates:
        key = (alert.market, alert.system)
        if key not in worst or excess > worst[key][0]:
            worst[key] = (excess, alert)
    return [alert for _, alert in worst.values()]


def model_alerts(day: dt.date, metrics: pd.DataFrame, test_mae: Mapping[tuple[str, str], float],
                 limits: Thresholds) -> list[Alert]:
    """``mae_above_test`` and ``hit_rate_low`` over the latest model metrics in ``metrics``;
    ``test_mae`` maps (registered model name, model version) to the version's test MAE."""
    mae_candidates, hit_candidates = [], []
    for row in _model_values(metrics, "7d", "mae", "n_graded").itertuples(index=False):
        reference = test_mae.get((market(row.market).registered_name(row.system), str(row.model_version)))
        if reference is None or row.n < limits.min_graded or row.value <= reference + limits.mae_margin:
            continue
        mae_candidates.append((row.value - reference, Alert(
            day, "mae_above_test", row.market, row.system, row.value, reference + limits.mae_margin,
            f"version {row.model_version}: 7-day MAE {row.value:.3f} to {row.game_date} over {row.n:.0f} "
            f"player-games, test MAE {reference:.3f} + margin {limits.mae_margin:g}")))
    period = limits.hit_rate_period
    for row in _model_values(metrics, period, "hit_rate", "n_calls").itertuples(index=False):
        if row.n < limits.min_calls or row.value >= limits.min_hit_rate:
            continue
        hit_candidates.append((limits.min_hit_rate - row.value, Alert(
            day, "hit_rate_low", row.market, row.system, row.value, limits.min_hit_rate,
            f"version {row.model_version}: hit rate {row.value:.1f}% over {row.n:.0f} calls ({period} to "
            f"{row.game_date}), below {limits.min_hit_rate:g}%")))
    return _worst_per_system(mae_candidates) + _worst_per_system(hit_candidates)


def data_alerts(day: dt.date, metrics: pd.DataFrame, missing: list[dt.date], limits: Thresholds) -> list[Alert]:
    """``drift`` and ``stale_results`` over the latest data metrics, ``day_missing`` over ``missing``."""
    data = metrics[metrics["system"] == DATA_SYSTEM].dropna(subset=["value"]).sort_values("game_date")
    alerts = []
    psi_max = data[data["metric"] == "psi_max"].tail(1)
    for value, on in zip(psi_max["value"], psi_max["game_date"], strict=True):
        if value > limits.max_psi:
            feature = worst_feature(data[data["game_date"] == on])
            alerts.append(Alert(day, "drift", ALL_MARKETS, DATA_SYSTEM, value, limits.max_psi,
                                f"feature rows of {on}: largest PSI {value:.3f} ({feature}) above {limits.max_psi:g}"))
    freshness = data[data["metric"] == "freshness_days"].tail(1)
    for value, on in zip(freshness["value"], freshness["game_date"], strict=True):
        latest = on - dt.timedelta(days=int(value))
        if value > limits.max_freshness_days and season_of(latest) == season_of(on):
            alerts.append(Alert(day, "stale_results", ALL_MARKETS, DATA_SYSTEM, value, float(limits.max_freshness_days),
                                f"latest results are from {latest}, {value:.0f} days before {on}"))
    if missing:
        shown = ", ".join(str(d) for d in missing[:MISSING_DAYS_SHOWN])
        more = f" and {len(missing) - MISSING_DAYS_SHOWN} more" if len(missing) > MISSING_DAYS_SHOWN else ""
        alerts.append(Alert(day, "day_missing", ALL_MARKETS, DATA_SYSTEM, float(len(missing)), 0.0,
                            f"no results ingested for scheduled game day(s) {shown}{more}"))
    return alerts


def evaluate(day: dt.date, metrics: pd.DataFrame, test_mae: Mapping[tuple[str, str], float],
             missing: list[dt.date], limits: Thresholds | None = None) -> list[Alert]:
    """Every rule over ``metrics`` (``monitoring_metrics`` rows: the latest of each series is judged)."""
    limits = limits or Thresholds()
    return model_alerts(day, metrics, test_mae, limits) + data_alerts(day, metrics, missing, limits)


def missing_game_days(scheduled: Iterable[dt.date], ingested: Iterable[dt.date], day: dt.date) -> list[dt.date]:
    """Scheduled dates of ``day``'s season before ``day`` with no results ingested."""
    have = set(ingested)
    return sorted({d for d in scheduled if d < day and season_of(d) == season_of(day) and d not in have})


def worker_alert(day: dt.date, problem: str, unpredicted: int) -> Alert:
    """``worker_unavailable``: ``unpredicted`` slate rows got no prediction; ``problem`` says why."""
    return Alert(day, "worker_unavailable", ALL_MARKETS, WORKER_SYSTEM, float(unpredicted), 0.0, problem)


def alert_rows(alerts: list[Alert], created_at: pd.Timestamp | None = None, delivery: str = UNSENT) -> pd.DataFrame:
    created_at = created_at or pd.Timestamp.now(tz="UTC").floor("s")
    rows = [{**asdict(a), "created_at": created_at, "delivery": delivery, "attempts": 0} for a in alerts]
    return pd.DataFrame(rows, columns=ALERTS_SCHEMA.column_names)


def _outline(url: str) -> str:
    """A URL as far as its host, the part that is no secret (a Slack webhook's path is)."""
    head = re.match(r"[^/]*(//[^/]*)?", url)[0]
    return head + ("/…" if len(url) > len(head) else "")


def check_webhook_url(url: str) -> None:
    """Refuse a webhook URL that cannot work, naming it only as far as its host."""
    try:
        parts = urlsplit(url)
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # urlsplit refuses some malformed URLs outright ("http://[::1/x")
        usable = False
    if not usable:
        raise AlertConfigError(f"alert webhook URL {_outline(url)!r} is not an http(s):// URL with a host; "
                               "expected the URL the chat service gave, in ALERT_WEBHOOK_URL or a file named by "
                               "ALERT_WEBHOOK_URL_FILE")


def post_webhook(alerts: list[Alert], url: str, timeout: float = WEBHOOK_TIMEOUT_SECONDS) -> str | None:
    """POST the alerts as one Slack-compatible message (``{"text": ...}``); the error, else None.
    The error names the host only: a Slack webhook's path is its secret."""
    text = f"nba-player-points: {len(alerts)} alert(s)\n" + "\n".join(f"• {a.line()}" for a in alerts)
    try:
        httpx.post(url, json={"text": text}, timeout=timeout).raise_for_status()
    except httpx.HTTPStatusError as exc:
        return f"alert webhook at {urlsplit(url).hostname} answered HTTP {exc.response.status_code}"
    except httpx.HTTPError as exc:
        return settings.hide_secrets(f"alert webhook at {urlsplit(url).hostname} failed: {type(exc).__name__}: {exc}")
    return None


def _keep_delivery(rows: pd.DataFrame, stored: pd.DataFrame, webhook: bool) -> pd.DataFrame:
    """Alerts an earlier run stored keep how their delivery went; one stored while no webhook was set
    is to be sent now that one is."""
    key = [c for c in ALERTS_SCHEMA.key if c != ALERTS_SCHEMA.date_column]  # all of one day's rows
    previous = {tuple(r[c] for c in key): r for r in stored.to_dict("records")}
    kept = []
    for row in rows.to_dict("records"):
        old = previous.get(tuple(row[c] for c in key))
        if old is not None:
            row.update({column: old[column] for column in DELIVERY_COLUMNS})
            if webhook and old["delivery"] == UNSENT:
                row["delivery"] = PENDING
        kept.append(row)
    return pd.DataFrame(kept, columns=ALERTS_SCHEMA.column_names)


def _due(row: pd.Series, now: pd.Timestamp) -> bool:
    """A pending alert's next POST is due: never tried, or its wait since the last try is over."""
    if not row["attempts"] or pd.isna(row["attempted_at"]):
        return True
    return now >= row["attempted_at"] + DELIVERY_BACKOFF * 2 ** (int(row["attempts"]) - 1)


def deliver(warehouse: Warehouse, url: str, now: pd.Timestamp) -> tuple[int, str | None, int, int]:
    """POST every pending alert whose retry is due, of any day, in one message, and record the try:
    (alerts delivered, the webhook's error, alerts still pending, alerts given up this time)."""
    pending = warehouse.read(ALERTS_SCHEMA, equals={"delivery": PENDING})
    due = pending[[_due(row, now) for _, row in pending.iterrows()]]
    if due.empty:
        return 0, None, len(pending), 0
    error = post_webhook([Alert(**{f.name: row[f.name] for f in fields(Alert)}) for _, row in due.iterrows()], url)
    attempts = due["attempts"].fillna(0).astype(int) + 1
    delivery = DELIVERED if error is None else attempts.map(lambda n: GIVEN_UP if n >= DELIVERY_ATTEMPTS else PENDING)
    tried = due.assign(attempts=attempts, attempted_at=now, delivery=delivery, delivery_error=error)
    warehouse.write(ALERTS_SCHEMA, tried)
    still = len(pending) - len(due) + int((tried["delivery"] == PENDING).sum())
    return (0 if error else len(due)), error, still, int((tried["delivery"] == GIVEN_UP).sum())


def raise_alerts(warehouse: Warehouse, day: dt.date, metrics: pd.DataFrame,
                 test_mae: Mapping[tuple[str, str], float], limits: Thresholds | None = None,
                 webhook_url: str | None = None, now: pd.Timestamp | None = None,
                 also: Sequence[Alert] = ()) -> AlertOutcome:
    """Judge the just-recorded ``metrics`` and the schedule, add ``also`` (alerts the caller found, such
    as ``worker_alert``), store the alerts of ``day`` by key and POST what is pending and due, this day's
    and earlier days'; the caller exits non-zero when any fired."""
    if webhook_url:
        check_webhook_url(webhook_url)
    now = now if now is not None else pd.Timestamp.now(tz="UTC").floor("s")
    warehouse.write(ALERTS_SCHEMA, alert_rows([]))  # gives alerts an older version stored the delivery columns
    season = (day - dt.timedelta(days=LOOKBACK_DAYS), day)
    scheduled = warehouse.read(SCHEDULE_SCHEMA, date_range=season)["game_date"]
    ingested = warehouse.read(BOX_SCORES_SCHEMA, date_range=season)["game_date"]
    alerts = evaluate(day, metrics, test_mae, missing_game_days(scheduled, ingested, day), limits) + list(also)
    rows = alert_rows(alerts, now, PENDING if webhook_url else UNSENT)
    write_changed(warehouse, ALERTS_SCHEMA, _keep_delivery(rows, warehouse.read(ALERTS_SCHEMA, date_range=(day, day)),
                                                           bool(webhook_url)), stamp="created_at")
    if not webhook_url:
        return AlertOutcome(alerts, 0, None)
    return AlertOutcome(alerts, *deliver(warehouse, webhook_url, now))
