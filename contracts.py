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
