"""Names shared by every part of the platform: tables, columns, systems, metric keys.

Every other module imports them from here so a rename happens in one place and the warehouse, the
MLflow UI and the worker never disagree (the README's "How the data flows" shows where each is used).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# --- tables -------------------------------------------------------------------------------------
BOX_SCORES = "box_scores"
PROP_LINES = "prop_lines"
FEATURE_STORE = "ml_feature_store_v2"
PREDICTIONS = "player_prop_predictions"

FEATURE_VERSION = "v3.0"  # v3: every market's features and outcomes (markets/)


@dataclass(frozen=True)
class Feature:
    """One feature of the store: its name, what it describes, the window it looks back over and its
    definition (the documentation table in docs/features.md is made from these). ``compute`` is set on a
    market's own features, in the small vocabulary ``features/build.py`` evaluates:
    ``("player_mean", column, window)``, ``("player_ratio", numerator, denominator, window)``,
    ``("team_mean", column, window)`` or ``("opponent_mean", column, window)``."""

    name: str
    group: str
    window: str
    definition: str
    compute: tuple | None = None


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # one of: INT64, FLOAT64, STRING, DATE, BOOL, TIMESTAMP (BigQuery names; DuckDB maps them)
    nullable: bool = True
    default: str | None = None  # the value rows stored before the column existed get (a key column added later)


@dataclass(frozen=True)
class TableSchema:
    """A warehouse table: its columns, the key a write replaces by, and the date column it is
    partitioned by (a backfill replaces a date range of it)."""

    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    date_column: str = "game_date"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


KEY_COLUMNS = ("player_id", "game_id")

_BOX_STATS = ("minutes", "points", "fgm", "fga", "fg3m", "fg3a", "ftm", "fta", "oreb", "dreb",
              "reb", "ast", "stl", "blk", "tov", "pf", "plus_minus")

# who played, when and against whom: the leading columns of every player-game table
PLAYER_GAME_COLUMNS = (
    Column("player_id", "INT64", False),
    Column("player_name", "STRING", False),
    Column("game_id", "STRING", False),
    Column("game_date", "DATE", False),
    Column("season", "STRING", False),
    Column("team", "STRING", False),
    Column("opponent", "STRING", False),
)

BOX_SCORES_SCHEMA = TableSchema(
    BOX_SCORES,
    (
        *PLAYER_GAME_COLUMNS,
        Column("is_home", "BOOL", False),
        Column("win", "BOOL"),
        *(Column(s, "INT64", s == "plus_minus") for s in _BOX_STATS),
    ),
    KEY_COLUMNS,
)

PROP_LINES_SCHEMA = TableSchema(
    PROP_LINES,
    (
        Column("game_date", "DATE", False),
        Column("player_id", "INT64", False),
        Column("player_name", "STRING", False),
        Column("market", "STRING", False, default="points"),  # markets.MARKETS; rows from before markets are points
        Column("bookmaker", "STRING", False),
        Column("line", "FLOAT64", False),
        Column("over_price", "INT64"),
        Column("under_price", "INT64"),
        Column("team", "STRING"),
        Column("opponent", "STRING"),
        Column("commence_time", "TIMESTAMP"),
    ),
    ("game_date", "player_id", "market", "bookmaker"),
)

PREDICTIONS_SCHEMA = TableSchema(
    PREDICTIONS,
    (
        Column("game_date", "DATE", False),
        Column("game_id", "STRING", False),
        Column("player_id", "INT64", False),
        Column("market", "STRING", False, default="points"),  # markets.MARKETS; rows from before markets are points
        Column("system", "STRING", False),
        Column("model_version", "STRING", False),
        Column("predicted_points", "FLOAT64", False),  # the market's predicted outcome (named when points was all)
        Column("line", "FLOAT64"),
        Column("recommendation", "STRING", False),
        Column("p_over", "FLOAT64"),
        Column("p_push", "FLOAT64"),  # P(outcome == line): a whole-number line can push
        Column("p_under", "FLOAT64"),
        Column("confidence", "FLOAT64"),  # P of the side called (0.5 .. 1); null on PASS or without a line
        Column("source", "STRING", False),
        Column("created_at", "TIMESTAMP", False),
    ),
    ("game_date", "game_id", "player_id", "market", "system", "model_version"),
)

# --- live operation: the schedule, who is out, upstream checks, grades, monitoring, alerts ---------
SCHEDULE = "schedule"
PLAYERS_OUT = "players_out"
DATA_CHECKS = "data_checks"
PREDICTION_GRADES = "prediction_grades"
MONITORING = "monitoring_metrics"
ALERTS = "alerts"

SCHEDULE_SCHEMA = TableSchema(
    SCHEDULE,
    (
        Column("game_date", "DATE", False),
        Column("game_id", "STRING", False),
        Column("season", "STRING", False),
        Column("home_team", "STRING", False),
        Column("away_team", "STRING", False),
    ),
    ("game_id",),
)

# an injury report: players ruled out of a date's game, used by the slate instead of a roster guess
PLAYERS_OUT_SCHEMA = TableSchema(
    PLAYERS_OUT,
    (
        Column("game_date", "DATE", False),
        Column("player_id", "INT64", False),
        Column("team", "STRING"),
        Column("reason", "STRING"),
    ),
    ("game_date", "player_id"),
)

# one row per ingested game date: passed, held (incomplete or late: kept out of features) or accepted
DATA_CHECKS_SCHEMA = TableSchema(
    DATA_CHECKS,
    (
        Column("game_date", "DATE", False),
        Column("status", "STRING", False),
        Column("problems", "STRING"),
        Column("checked_at", "TIMESTAMP", False),
    ),
    ("game_date",),
)

PREDICTION_GRADES_SCHEMA = TableSchema(
    PREDICTION_GRADES,
    (
        Column("game_date", "DATE", False),
        Column("game_id", "STRING", False),
        Column("player_id", "INT64", False),
        Column("market", "STRING", False, default="points"),  # markets.MARKETS; rows from before markets are points
        Column("system", "STRING", False),
        Column("model_version", "STRING", False),
        Column("outcome", "STRING", False),  # graded | void (did not play)
        Column("predicted_points", "FLOAT64", False),
        Column("actual_points", "FLOAT64"),
        Column("abs_error", "FLOAT64"),
        Column("line", "FLOAT64"),
        Column("recommendation", "STRING", False),
        Column("ou_result", "STRING"),  # win | loss | push; null without a call or when void
        Column("p_over", "FLOAT64"),
        Column("graded_at", "TIMESTAMP", False),
    ),
    ("game_date", "game_id", "player_id", "market", "system", "model_version"),
)

# long format: one value per (day, system, version, period, metric); data metrics use system "data"
MONITORING_SCHEMA = TableSchema(
    MONITORING,
    (
        Column("game_date", "DATE", False),
        Column("market", "STRING", False, default="points"),  # markets.MARKETS; rows from before markets are points
        Column("system", "STRING", False),
        Column("model_version", "STRING", False),
        Column("period", "STRING", False),  # day | 7d | 30d
        Column("metric", "STRING", False),
        Column("value", "FLOAT64"),
        Column("created_at", "TIMESTAMP", False),
    ),
    ("game_date", "market", "system", "model_version", "period", "metric"),
)

ALERTS_SCHEMA = TableSchema(
    ALERTS,
    (
        Column("game_date", "DATE", False),
        Column("rule", "STRING", False),
        Column("market", "STRING", False, default="points"),  # markets.MARKETS; rows from before markets are points
        Column("system", "STRING", False),
        Column("value", "FLOAT64"),
        Column("threshold", "FLOAT64"),
        Column("message", "STRING", False),
        Column("created_at", "TIMESTAMP", False),
        # webhook delivery, nullable: the store migration adds these columns to the alerts of an older version
        Column("delivery", "STRING"),  # PENDING, DELIVERED, GIVEN_UP or UNSENT (below)
        Column("attempts", "INT64"),  # webhook POSTs tried
        Column("attempted_at", "TIMESTAMP"),  # the last of them
        Column("delivery_error", "STRING"),  # the last failure; names the webhook's host only
    ),
    ("game_date", "rule", "market", "system"),
)

# --- prediction systems -------------------------------------------------------------------------
XGBOOST_V1 = "xgboost_v1"
CATBOOST_V8 = "catboost_v8"
ENSEMBLE_V1 = "ensemble_v1"
MOVING_AVERAGE = "moving_average"
HIST_GBM_V1 = "hist_gbm_v1"
LINE_BLEND_V1 = "line_blend_v1"
# The table of systems, one module each in registry/systems/ named like the system (which says whether
# it is tuned, how it fits and predicts). Trained in this order: a combining system (the ensemble)
# after its members. Served the other way round: the last one a prediction leads with (where it predicts:
# the line blend abstains on games without a line), the baseline last.
SYSTEMS = (MOVING_AVERAGE, HIST_GBM_V1, XGBOOST_V1, CATBOOST_V8, ENSEMBLE_V1, LINE_BLEND_V1)
PRODUCTION_ALIAS = "production"
PRODUCTION_STAGE = "Production"

DEFAULT_EXPERIMENT = "nba-player-points"

# --- metric keys logged on every training run ---------------------------------------------------
METRIC_KEYS = (
    "train_mae", "val_mae", "test_mae", "val_rmse", "test_rmse", "val_within_3_pct",
    "test_within_3_pct", "train_val_gap", "n_train", "n_val", "n_test",
)
LINE_METRIC_KEYS = ("test_line_mae", "test_model_mae_on_lines", "test_hit_rate", "test_brier", "test_ece",
                    "test_brier_graded", "test_ece_graded")

# --- live monitoring: values of prediction_grades, metrics of monitoring_metrics, alert rules -----
GRADED, VOID = "graded", "void"  # prediction_grades.outcome
WIN, LOSS, PUSH = "win", "loss", "push"  # prediction_grades.ou_result
PERIODS = {"day": 1, "7d": 7, "30d": 30}  # calendar days ending on the game day
# |p_over - 0.5| buckets: (name, low inclusive, high exclusive; the last includes 0.5)
CONFIDENCE_BUCKETS = (("conf_00_05", 0.0, 0.05), ("conf_05_10", 0.05, 0.1), ("conf_10_20", 0.1, 0.2),
                      ("conf_20_50", 0.2, 0.5))
# per system, model version and period; percentages like the training keys; hit rate = wins / (wins + losses)
MONITORING_METRIC_KEYS = (
    "mae", "within_3_pct", "hit_rate", "brier", "n_graded", "n_void", "n_calls", "n_pushes",
    *(f"{kind}_{name}" for name, _, _ in CONFIDENCE_BUCKETS for kind in ("hit_rate", "n_calls")),
)
DATA_SYSTEM = "data"  # monitoring_metrics.system of the input metrics; model_version is FEATURE_VERSION
ALL_MARKETS = "all"  # their market: the store's features serve every market
DATA_METRIC_KEYS = ("psi_max", "missing_input_share", "freshness_days", "n_feature_rows")  # + "psi.<feature>"
ALERT_RULES = ("mae_above_test", "hit_rate_low", "drift", "day_missing", "stale_results", "worker_unavailable")
WORKER_SYSTEM = "worker"  # alerts.system of an alert about the worker the slate is predicted through
# alerts.delivery: pending (to be POSTed, again after a failure, on a later run), delivered, given_up
# (attempts exhausted), unsent (no webhook set); null on alerts an older version stored, which it sent
PENDING, DELIVERED, GIVEN_UP, UNSENT = "pending", "delivered", "given_up", "unsent"
MONITORING_EXPERIMENT = f"{DEFAULT_EXPERIMENT}-monitoring"

# --- MLproject entry points ---------------------------------------------------------------------
ENTRY_POINTS = ("backfill", "train", "backtest", "promote", "rollback", "reconcile", "history", "compare",
                "predict", "serve", "daily", "retrain", "replay", "held", "accept")

# --- the dates a command or a request may name ------------------------------------------------------
FIRST_SEASON_START = dt.date(1946, 8, 1)  # the league's first season, 1946-47; a season runs August to July


def season_window(today: dt.date) -> tuple[dt.date, dt.date]:
    """From the league's first season to the end of the season after today's. The first season, not
    the first stored one: a backfill's files may bring older seasons than the warehouse holds."""
    this_season = today.year if today.month >= 8 else today.year - 1
    return FIRST_SEASON_START, dt.date(this_season + 2, 7, 31)
