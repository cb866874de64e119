"""Names shared by every part of the platform: tables, columns, systems, metric keys.

They are the contracts of ``design.md`` section 2. Every other module imports them from here so a
rename happens in one place and the warehouse, the MLflow UI and the worker never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

# --- tables -------------------------------------------------------------------------------------
BOX_SCORES = "box_scores"
PROP_LINES = "prop_lines"
FEATURE_STORE = "ml_feature_store_v2"
PREDICTIONS = "player_prop_predictions"

FEATURE_VERSION = "v2.1"
TARGET = "points"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # one of: INT64, FLOAT64, STRING, DATE, BOOL, TIMESTAMP (BigQuery names; DuckDB maps them)
    nullable: bool = True


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
        Column("bookmaker", "STRING", False),
        Column("line", "FLOAT64", False),
        Column("over_price", "INT64"),
        Column("under_price", "INT64"),
        Column("team", "STRING"),
        Column("opponent", "STRING"),
        Column("commence_time", "TIMESTAMP"),
    ),
    ("game_date", "player_id", "bookmaker"),
)

PREDICTIONS_SCHEMA = TableSchema(
    PREDICTIONS,
    (
        Column("game_date", "DATE", False),
        Column("game_id", "STRING", False),
        Column("player_id", "INT64", False),
        Column("system", "STRING", False),
        Column("model_version", "STRING", False),
        Column("predicted_points", "FLOAT64", False),
        Column("line", "FLOAT64"),
        Column("recommendation", "STRING", False),
        Column("p_over", "FLOAT64"),
        Column("source", "STRING", False),
        Column("created_at", "TIMESTAMP", False),
    ),
    ("game_date", "game_id", "player_id", "system", "model_version"),
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
    ("game_date", "game_id", "player_id", "system", "model_version"),
)

# long format: one value per (day, system, version, period, metric); data metrics use system "data"
MONITORING_SCHEMA = TableSchema(
    MONITORING,
    (
        Column("game_date", "DATE", False),
        Column("system", "STRING", False),
        Column("model_version", "STRING", False),
        Column("period", "STRING", False),  # day | 7d | 30d
        Column("metric", "STRING", False),
        Column("value", "FLOAT64"),
        Column("created_at", "TIMESTAMP", False),
    ),
    ("game_date", "system", "model_version", "period", "metric"),
)

ALERTS_SCHEMA = TableSchema(
    ALERTS,
    (
        Column("game_date", "DATE", False),
        Column("rule", "STRING", False),
        Column("system", "STRING", False),
        Column("value", "FLOAT64"),
        Column("threshold", "FLOAT64"),
        Column("message", "STRING", False),
        Column("created_at", "TIMESTAMP", False),
    ),
    ("game_date", "rule", "system"),
)

# --- prediction systems -------------------------------------------------------------------------
XGBOOST_V1 = "xgboost_v1"
CATBOOST_V8 = "catboost_v8"
ENSEMBLE_V1 = "ensemble_v1"
MOVING_AVERAGE = "moving_average"
SYSTEMS = (MOVING_AVERAGE, XGBOOST_V1, CATBOOST_V8, ENSEMBLE_V1)
TUNED_SYSTEMS = (XGBOOST_V1, CATBOOST_V8)
PRODUCTION_ALIAS = "production"
PRODUCTION_STAGE = "Production"

DEFAULT_EXPERIMENT = "nba-player-points"

# --- metric keys logged on every training run ---------------------------------------------------
METRIC_KEYS = (
    "train_mae", "val_mae", "test_mae", "val_rmse", "test_rmse", "val_within_3_pct",
    "test_within_3_pct", "train_val_gap", "n_train", "n_val", "n_test",
)
LINE_METRIC_KEYS = ("test_line_mae", "test_model_mae_on_lines", "test_hit_rate")

# --- MLproject entry points ---------------------------------------------------------------------
ENTRY_POINTS = ("backfill", "train", "backtest", "promote", "rollback", "history", "compare",
                "predict", "serve")
