"""The cloud warehouse: the production tables in one BigQuery dataset.

Writes stage the rows in a scratch table and swap them in with one multi-statement transaction, so
a reader never sees a half-rebuilt month and a failed write leaves the table as it was. Every
value travels as a bound query parameter: nothing a caller passes is ever spliced into SQL text.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Collection

import numpy as np
import pandas as pd
from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from contracts import TableSchema
from warehouse.base import (
    DateRange,
    Rebuild,
    Warehouse,
    WarehouseError,
    _empty,
    _typed,
    check_frame,
    missing_columns,
    require_columns,
)

# Project ids may be domain-scoped (``example.com:proj``); dataset ids are letters, digits, ``_``.
_URL = re.compile(r"bigquery://(?P<project>[a-z][a-z0-9.:-]*[a-z0-9])/(?P<dataset>\w+)/?")


def parse_url(url: str) -> tuple[str, str]:
    """Project and dataset, refusing anything else so a typo fails at startup, not mid-backfill."""
    match = _URL.fullmatch(url)
    if match is None:
        raise WarehouseError(f"WAREHOUSE_URL is {url!r}; expected bigquery://PROJECT/DATASET")
    return match["project"], match["dataset"]


def _ident(name: str) -> str:
    return f"`{name}`"


def bq_schema(schema: TableSchema) -> list[bigquery.SchemaField]:
    """The BigQuery fields; REQUIRED mirrors the NOT NULL the DuckDB backend declares."""
    return [bigquery.SchemaField(c.name, c.type, mode="NULLABLE" if c.nullable else "REQUIRED")
            for c in schema.columns]


def _param(name: str, type_: str, value: object) -> bigquery.ScalarQueryParameter:
    """A parameter whose value the client can serialise: numpy and pandas scalars become Python
    ones, and a timestamp given for a DATE column becomes its date."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    elif isinstance(value, np.generic):
        value = value.item()
    if type_ == "DATE" and isinstance(value, dt.datetime):
        value = value.date()
    return bigquery.ScalarQueryParameter(name, type_, value)


def _range_params(date_range: DateRange) -> list[bigquery.ScalarQueryParameter]:
    return [_param("start", "DATE", date_range[0]), _param("end", "DATE", date_range[1])]


def select_sql(table: str, schema: TableSchema, date_range: DateRange | None = None,
               equals: dict[str, object] | None = None, dates: Collection[dt.date] | None = None
               ) -> tuple[str, list[bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter]]:
    """The read query and its parameters; ordered like DuckDB's so both backends return the same
    frame for the same rows."""
    types = {c.name: c.type for c in schema.columns}
    conditions: list[str] = []
    params: list[bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter] = []
    if date_range is not None:
        conditions.append(f"{_ident(schema.date_column)} BETWEEN @start AND @end")
        params += _range_params(date_range)
    if dates is not None:
        conditions.append(f"{_ident(schema.date_column)} IN UNNEST(@dates)")
        params.append(bigquery.ArrayQueryParameter("dates", "DATE", list(dates)))
    for i, (col, value) in enumerate((equals or {}).items()):
        if col not in types:
            raise WarehouseError(f"{schema.name} has no column {col!r}")
        conditions.append(f"{_ident(col)} = @v{i}")
        params.append(_param(f"v{i}", types[col], value))
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    cols = ", ".join(_ident(c) for c in schema.column_names)
    order = ", ".join(_ident(k) for k in dict.fromkeys((schema.date_column, *schema.key))
                      if k in types)
    return f"SELECT {cols} FROM {_ident(table)}{where} ORDER BY {order}", params


def count_sql(table: str) -> str:
    return f"SELECT COUNT(*) AS n FROM {_ident(table)}"


def write_script(table: str, staging: str, schema: TableSchema, rebuild: Rebuild | None = None) -> str:
    """One script, one transaction: the delete and the insert commit together or not at all.

    It deletes the stored rows whose key appears among the staged ones and, for a rebuild, the rows
    the staged ones supersede (the same rows the DuckDB backend deletes).
    """
    target, staged = _ident(table), _ident(staging)
    keys = ", ".join(_ident(k) for k in schema.key)
    condition = f"STRUCT({keys}) IN (SELECT AS STRUCT {keys} FROM {staged})"
    if rebuild is not None:
        condition += " OR " + rebuild.condition(schema, staged, _ident)
    cols = ", ".join(_ident(c) for c in schema.column_names)
    return (
        "BEGIN TRANSACTION;\n"
        f"DELETE FROM {target} WHERE {condition};\n"
        f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {staged};\n"
        "COMMIT TRANSACTION;"
    )


class BigQueryWarehouse(Warehouse):
    def __init__(self, url: str, client: bigquery.Client | None = None) -> None:
        self.url = url
        self.project, self.dataset = parse_url(url)
        self._client = client

    @property
    def client(self) -> bigquery.Client:
        """Created on first use so that building the warehouse (``connect``) needs no credentials."""
        if self._client is None:
            self._client = bigquery.Client(project=self.project)
        return self._client

    def table_id(self, table: str) -> str:
        return f"{self.project}.{self.dataset}.{table}"

    def _stored(self, table: str) -> bigquery.Table | None:
        try:
            return self.client.get_table(table)
        except NotFound:
            return None

    def _add_missing_columns(self, stored: bigquery.Table, schema: TableSchema) -> None:
        """BigQuery adds a column to a table only as NULLABLE, by a schema update, which keeps the
        stored rows: the same migration the DuckDB backend makes with ALTER TABLE."""
        missing = missing_columns(schema, (f.name for f in stored.schema))
        if missing:
            stored.schema = [*stored.schema, *(bigquery.SchemaField(c.name, c.type, mode="NULLABLE") for c in missing)]
            self.client.update_table(stored, ["schema"])
            # BigQuery keys are the write script's, not the table's: a defaulted column (a market added
            # to a key) only needs its value in the stored rows
            for column in (c for c in missing if c.default is not None):
                self.client.query(f"UPDATE `{stored.project}.{stored.dataset_id}.{stored.table_id}` "
                                  f"SET `{column.name}` = @value WHERE TRUE", job_config=bigquery.QueryJobConfig(
                                      query_parameters=[bigquery.ScalarQueryParameter("value", "STRING",
                                                                                      column.default)])).result()

    def read(self, schema: TableSchema, date_range: DateRange | None = None,
             equals: dict[str, object] | None = None, dates: Collection[dt.date] | None = None) -> pd.DataFrame:
        table = self.table_id(schema.name)
        sql, params = select_sql(table, schema, date_range, equals, dates)
        stored = self._stored(table)
        if stored is None:
            return _empty(schema)
        require_columns(schema, (f.name for f in stored.schema))
        job = self.client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=params))
        # Through Arrow rather than RowIterator.to_dataframe, which needs the optional db-dtypes
        # package for DATE columns; _typed gives the dtypes either way.
        return _typed(schema, job.result().to_arrow().to_pandas())

    def write(self, schema: TableSchema, frame: pd.DataFrame, rebuild: Rebuild | None = None) -> int:
        frame = check_frame(schema, frame)
        table = self.table_id(schema.name)
        # Unique per write so concurrent writers to the same table never share a staging table.
        staging = self.table_id(f"_staging_{schema.name}_{uuid.uuid4().hex[:12]}")
        script = write_script(table, staging, schema, rebuild)  # a bad rebuild fails before any call
        fields = bq_schema(schema)
        # an existing table comes back as stored (the client fetches it on a conflict)
        stored = self.client.create_table(bigquery.Table(table, schema=fields), exists_ok=True)
        self._add_missing_columns(stored, schema)
        try:
            self.client.load_table_from_dataframe(
                frame, staging,
                job_config=bigquery.LoadJobConfig(schema=fields, write_disposition="WRITE_TRUNCATE"),
            ).result()
            self.client.query(script).result()
        finally:
            self.client.delete_table(staging, not_found_ok=True)
        return len(frame)

    def count(self, schema: TableSchema) -> int:
        table = self.table_id(schema.name)
        if self._stored(table) is None:
            return 0
        rows = list(self.client.query(count_sql(table)).result())
        return int(rows[0][0])
