"""Dataset lineage for MLflow: which warehouse table, which date range, which rows trained a run."""

from __future__ import annotations

import time
from functools import cached_property
from typing import Any

import mlflow
import pandas as pd
from mlflow.data.dataset_source import DatasetSource
from mlflow.data.pandas_dataset import PandasDataset
from mlflow.exceptions import MlflowException
from mlflow.types import ColSpec, DataType, Schema

from contracts import FEATURE_STORE, FEATURE_VERSION
from features.definitions import FEATURE_STORE_SCHEMA

LOG_INPUT_ATTEMPTS = 3


class WarehouseSource(DatasetSource):
    """A date range of a warehouse table (DuckDB file or BigQuery dataset), as MLflow records it."""

    def __init__(self, url: str, table: str, start: str, end: str) -> None:
        self.url, self.table, self.start, self.end = url, table, start, end

    @staticmethod
    def _get_source_type() -> str:
        return "warehouse"

    def load(self, **kwargs: Any) -> pd.DataFrame:
        import datetime as dt

        from features.store import read_store
        from warehouse import connect

        return read_store(connect(self.url), dt.date.fromisoformat(self.start), dt.date.fromisoformat(self.end))

    @staticmethod
    def _can_resolve(raw_source: Any) -> bool:
        return False

    @classmethod
    def _resolve(cls, raw_source: Any) -> WarehouseSource:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "table": self.table, "start": self.start, "end": self.end}

    @classmethod
    def from_dict(cls, source_dict: dict[str, Any]) -> WarehouseSource:
        return cls(**source_dict)


# the store's declared column types as MLflow names them (what its inference finds for these columns)
_MLFLOW_TYPES = {"INT64": DataType.long, "FLOAT64": DataType.double, "STRING": DataType.string,
                 "DATE": DataType.datetime, "TIMESTAMP": DataType.datetime, "BOOL": DataType.boolean}
_DECLARED = {c.name: _MLFLOW_TYPES[c.type] for c in FEATURE_STORE_SCHEMA.columns}


class StoreDataset(PandasDataset):
    """A split of the feature store whose schema comes from the store's declaration.

    MLflow's inference walks every value of every column in Python (seconds per split, each retrain);
    the declared types are the same answer, and "required" is one vectorised null check per column.
    Splits are rows of the store, so every column is declared."""

    @cached_property
    def schema(self) -> Schema:
        return Schema([ColSpec(_DECLARED[name], name, required=bool(self._df[name].notna().all()))
                       for name in self._df.columns])


def split_dataset(frame: pd.DataFrame, context: str, warehouse_url: str, target: str) -> PandasDataset:
    """One split as an MLflow dataset (source, digest, rows, date range). Build it once per split and
    log it on every system's run: its digest and schema are worked out on first use and kept."""
    start, end = str(min(frame["game_date"])), str(max(frame["game_date"]))
    return StoreDataset(frame, WarehouseSource(warehouse_url, FEATURE_STORE, start, end), targets=target,
                        name=f"{FEATURE_STORE}@{FEATURE_VERSION}:{context}:{start}..{end}")


def log_split(dataset: PandasDataset, context: str) -> None:
    """Record one split (``split_dataset``) as an input of the active run."""
    for attempt in range(LOG_INPUT_ATTEMPTS):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except MlflowException:
            # two runs of one experiment (processes sharing a study or a tracking server) insert the
            # same dataset at once; the loser's insert breaks the unique key, and a second try finds
            # the dataset there and only links it to the run
            if attempt + 1 == LOG_INPUT_ATTEMPTS:
                raise
            time.sleep(0.2 * (attempt + 1))
