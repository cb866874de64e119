"""The BigQuery backend, tested at the client boundary.

No emulator is reachable from CI, so a fake client records what the backend sends: the SQL (which
must parse as BigQuery SQL), the bound parameters, the load job's schema and the clean-up of the
staging table. What BigQuery itself would do with them is left to a run against a real dataset.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlglot
from google.api_core.exceptions import BadRequest, NotFound
from google.cloud import bigquery
from sqlglot import exp

from contracts import BOX_SCORES_SCHEMA, PREDICTIONS_SCHEMA, PROP_LINES_SCHEMA, TableSchema
from features.definitions import FEATURE_STORE_SCHEMA
from warehouse import WarehouseError, connect
from warehouse.base import Rebuild, SchemaMismatch, _empty
from warehouse.bigquery_backend import BigQueryWarehouse, bq_schema, parse_url, select_sql, write_script
from warehouse.duckdb_backend import DuckDBWarehouse

URL = "bigquery://proj-1/nba"
SCHEMAS = (BOX_SCORES_SCHEMA, PROP_LINES_SCHEMA, PREDICTIONS_SCHEMA)
DECLARED = {s.name: s for s in (*SCHEMAS, FEATURE_STORE_SCHEMA)}


def parse_bigquery(sql: str) -> list[exp.Expression]:
    """Every statement of ``sql``; sqlglot raises ParseError on anything BigQuery would not parse."""
    statements = sqlglot.parse(sql, read="bigquery")
    assert statements and all(s is not None for s in statements), sql
    return statements


class FakeJob:
    def __init__(self, frame: pd.DataFrame | None = None, rows: list[tuple] | None = None,
                 error: Exception | None = None) -> None:
        self.frame, self.rows, self.error = frame, rows or [], error

    def result(self) -> FakeJob:
        if self.error is not None:
            raise self.error
        return self

    def to_arrow(self) -> pa.Table:
        return pa.Table.from_pandas(self.frame, preserve_index=False)

    def __iter__(self):
        return iter(self.rows)


class FakeClient:
    """Records every call; tables in ``tables`` exist (with the fields in ``stored``, else those the code
    declares), the rest raise NotFound like BigQuery."""

    def __init__(self, tables: tuple[str, ...] = (), query_jobs: list[FakeJob] | None = None,
                 load_error: Exception | None = None,
                 stored: dict[str, list[bigquery.SchemaField]] | None = None) -> None:
        self.tables = set(tables) | set(stored or {})
        self.stored = dict(stored or {})
        self.query_jobs = list(query_jobs or [])
        self.load_error = load_error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def call(self, name: str) -> dict[str, Any]:
        (found,) = [kw for n, kw in self.calls if n == name]
        return found

    def get_table(self, table: str) -> bigquery.Table:
        self.calls.append(("get_table", {"table": table}))
        if table not in self.tables:
            raise NotFound(f"Not found: Table {table}")
        return bigquery.Table(table, schema=self.stored.get(table) or bq_schema(DECLARED[table.split(".")[-1]]))

    def create_table(self, table: bigquery.Table, exists_ok: bool = False) -> bigquery.Table:
        """Like the real client: with ``exists_ok`` an existing table comes back as stored."""
        self.calls.append(("create_table", {"table": table, "exists_ok": exists_ok}))
        table_id = f"{table.project}.{table.dataset_id}.{table.table_id}"
        if table_id in self.stored:
            return bigquery.Table(table_id, schema=self.stored[table_id])
        self.tables.add(table_id)
        return table

    def update_table(self, table: bigquery.Table, fields: list[str]) -> bigquery.Table:
        self.calls.append(("update_table", {"table": table, "fields": fields}))
        self.stored[f"{table.project}.{table.dataset_id}.{table.table_id}"] = list(table.schema)
        return table

    def load_table_from_dataframe(self, frame: pd.DataFrame, destination: str,
                                  job_config: bigquery.LoadJobConfig) -> FakeJob:
        self.calls.append(("load", {"frame": frame.copy(), "destination": destination,
                                    "job_config": job_config}))
        self.tables.add(destination)
        return FakeJob(error=self.load_error)

    def query(self, sql: str, job_config: bigquery.QueryJobConfig | None = None) -> FakeJob:
        parse_bigquery(sql)
        self.calls.append(("query", {"sql": sql, "job_config": job_config}))
        return self.query_jobs.pop(0) if self.query_jobs else FakeJob()

    def delete_table(self, table: str, not_found_ok: bool = False) -> None:
        self.calls.append(("delete_table", {"table": table, "not_found_ok": not_found_ok}))
        self.tables.discard(table)


def box_rows(n: int = 2, date: dt.date = dt.date(2025, 1, 15)) -> pd.DataFrame:
    rows = []
    for i in range(n):
        row: dict[str, object] = {
            "player_id": 100 + i, "player_name": f"Player {i}", "game_id": "0022400500",
            "game_date": date, "season": "2024-25", "team": "BOS", "opponent": "NYK",
            "is_home": True, "win": i % 2 == 0, "plus_minus": None if i == 0 else 4,
        }
        row.update(dict.fromkeys((c.name for c in BOX_SCORES_SCHEMA.columns[9:-1]), i + 1))
        rows.append(row)
    return pd.DataFrame(rows)[BOX_SCORES_SCHEMA.column_names]


def params(job_config: bigquery.QueryJobConfig | None) -> dict[str, tuple[str, object]]:
    if job_config is None:
        return {}
    return {p.name: (p.type_, p.value) for p in job_config.query_parameters}


# --- URL and connect ----------------------------------------------------------------------------

def test_connect_returns_bigquery_warehouse_without_creating_a_client() -> None:
    wh = connect("bigquery://proj/ds")
    assert isinstance(wh, BigQueryWarehouse)
    assert (wh.project, wh.dataset, wh.url) == ("proj", "ds", "bigquery://proj/ds")
    assert wh._client is None


def test_domain_scoped_project_is_accepted() -> None:
    assert parse_url("bigquery://example.com:my-proj/nba_v2") == ("example.com:my-proj", "nba_v2")


@pytest.mark.parametrize("url", [
    "bigquery://proj", "bigquery://proj/", "bigquery:///ds", "bigquery://proj/ds/extra",
    "bigquery://proj/bad-dataset", "bigquery://Proj Name/ds", "bigquery://proj/ds;drop",
])
def test_malformed_url_raises_naming_it(url: str) -> None:
    with pytest.raises(WarehouseError, match="bigquery://PROJECT/DATASET") as err:
        BigQueryWarehouse(url)
    assert repr(url) in str(err.value)
    with pytest.raises(WarehouseError):
        connect(url)


def test_default_client_is_created_lazily_for_the_project(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, object]] = []

    def fake_client(**kwargs: object) -> FakeClient:
        made.append(kwargs)
        return FakeClient()

    monkeypatch.setattr(bigquery, "Client", fake_client)
    wh = BigQueryWarehouse(URL)
    assert made == []
    assert wh.count(BOX_SCORES_SCHEMA) == 0
    assert wh.client is wh.client
    assert made == [{"project": "proj-1"}]


# --- pure SQL -----------------------------------------------------------------------------------

@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.name)
@pytest.mark.parametrize("rebuild", [Rebuild("game_id", "points"), None])
def test_write_script_is_one_transaction(schema: TableSchema, rebuild: Rebuild | None) -> None:
    schema = FEATURE_STORE_SCHEMA if rebuild is not None else schema
    staged = f"`p.d._staging_{schema.name}`"
    sql = write_script(f"p.d.{schema.name}", f"p.d._staging_{schema.name}", schema, rebuild)
    statements = parse_bigquery(sql)
    assert [type(s) for s in statements] == [exp.Transaction, exp.Delete, exp.Insert, exp.Commit]
    assert statements[1].find(exp.Table).sql("bigquery") == f"`p.d.{schema.name}`"
    keys = ", ".join(f"`{k}`" for k in schema.key)
    assert f"STRUCT({keys}) IN (SELECT AS STRUCT {keys} FROM {staged})" in sql
    assert "@" not in sql and "BETWEEN" not in sql  # never a whole date range
    if rebuild is not None:
        assert (f"OR `game_id` IN (SELECT `game_id` FROM {staged}) OR (`game_date` IN "
                f"(SELECT `game_date` FROM {staged}) AND `points` IS NOT NULL);") in sql


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.name)
def test_select_sql_orders_by_date_then_key(schema: TableSchema) -> None:
    sql, bound = select_sql(f"p.d.{schema.name}", schema)
    (select,) = parse_bigquery(sql)
    assert [c.name for c in select.expressions] == schema.column_names
    order = [o.this.name for o in select.args["order"].expressions]
    assert order == list(dict.fromkeys((schema.date_column, *schema.key)))
    assert bound == [] and "WHERE" not in sql


def test_select_sql_binds_values_and_rejects_unknown_columns() -> None:
    sql, bound = select_sql("p.d.box_scores", BOX_SCORES_SCHEMA,
                            (dt.date(2025, 1, 1), dt.date(2025, 1, 31)),
                            {"player_name": "Shaquille O'Neal'; DROP TABLE x; --"})
    parse_bigquery(sql)
    assert "O'Neal" not in sql and "2025" not in sql
    assert {p.name: (p.type_, p.value) for p in bound}["v0"] == (
        "STRING", "Shaquille O'Neal'; DROP TABLE x; --")
    with pytest.raises(WarehouseError, match="no column 'nope'"):
        select_sql("p.d.box_scores", BOX_SCORES_SCHEMA, equals={"nope": 1})



def test_select_sql_reads_scattered_dates_in_one_query() -> None:
    """The worker reads a request's dates at once (issue 15 row 3): bound as one DATE array, never inlined."""
    days = [dt.date(2025, 1, 3), dt.date(2025, 3, 9)]
    sql, bound = select_sql("p.d.box_scores", BOX_SCORES_SCHEMA, dates=days)
    parse_bigquery(sql)
    assert "IN UNNEST(@dates)" in sql and "2025" not in sql
    (array,) = bound
    assert (array.name, array.array_type, array.values) == ("dates", "DATE", days)

# --- read / count -------------------------------------------------------------------------------

def test_read_of_a_missing_table_is_empty_and_typed_like_duckdb(tmp_path) -> None:
    client = FakeClient()
    frame = BigQueryWarehouse(URL, client=client).read(BOX_SCORES_SCHEMA)
    duck = DuckDBWarehouse(f"duckdb:///{tmp_path / 'w.duckdb'}").read(BOX_SCORES_SCHEMA)
    assert frame.empty and list(frame.columns) == BOX_SCORES_SCHEMA.column_names
    assert frame.dtypes.equals(duck.dtypes) and frame.dtypes.equals(_empty(BOX_SCORES_SCHEMA).dtypes)
    assert client.names() == ["get_table"]
    assert client.calls[0][1]["table"] == "proj-1.nba.box_scores"


def test_read_binds_filters_and_types_rows_like_duckdb(tmp_path) -> None:
    stored = box_rows(3)
    client = FakeClient(tables=("proj-1.nba.box_scores",), query_jobs=[FakeJob(frame=stored)])
    wh = BigQueryWarehouse(URL, client=client)
    frame = wh.read(BOX_SCORES_SCHEMA, (dt.date(2025, 1, 10), dt.date(2025, 1, 20)),
                    {"player_id": np.int64(101), "team": "BOS", "game_date": pd.Timestamp("2025-01-15")})

    q = client.call("query")
    assert "2025" not in q["sql"] and "BOS" not in q["sql"] and "101" not in q["sql"]
    assert "FROM `proj-1.nba.box_scores` WHERE `game_date` BETWEEN @start AND @end" in q["sql"]
    assert "`player_id` = @v0 AND `team` = @v1 AND `game_date` = @v2" in q["sql"]
    bound = params(q["job_config"])
    assert bound == {"start": ("DATE", dt.date(2025, 1, 10)), "end": ("DATE", dt.date(2025, 1, 20)),
                     "v0": ("INT64", 101), "v1": ("STRING", "BOS"), "v2": ("DATE", dt.date(2025, 1, 15))}
    assert type(bound["v0"][1]) is int
    # The client must be able to serialise every parameter it is handed.
    for p in q["job_config"].query_parameters:
        p.to_api_repr()

    duck_wh = DuckDBWarehouse(f"duckdb:///{tmp_path / 'w.duckdb'}")
    duck_wh.write(BOX_SCORES_SCHEMA, stored)
    duck = duck_wh.read(BOX_SCORES_SCHEMA)
    assert frame.dtypes.equals(duck.dtypes)
    pd.testing.assert_frame_equal(frame, duck)


def test_read_with_an_unknown_column_fails_before_any_call() -> None:
    client = FakeClient(tables=("proj-1.nba.box_scores",))
    with pytest.raises(WarehouseError, match="no column"):
        BigQueryWarehouse(URL, client=client).read(BOX_SCORES_SCHEMA, equals={"nope": 1})
    assert client.calls == []


def test_count() -> None:
    client = FakeClient()
    wh = BigQueryWarehouse(URL, client=client)
    assert wh.count(PREDICTIONS_SCHEMA) == 0
    assert "query" not in client.names()

    client = FakeClient(tables=("proj-1.nba.player_prop_predictions",), query_jobs=[FakeJob(rows=[(7,)])])
    assert BigQueryWarehouse(URL, client=client).count(PREDICTIONS_SCHEMA) == 7
    assert "COUNT(*)" in client.call("query")["sql"]
    assert "`proj-1.nba.player_prop_predictions`" in client.call("query")["sql"]


# --- write --------------------------------------------------------------------------------------

def check_schema_fields(fields: list[bigquery.SchemaField], schema: TableSchema) -> None:
    assert [(f.name, f.field_type, f.mode) for f in fields] == [
        (c.name, c.type, "NULLABLE" if c.nullable else "REQUIRED") for c in schema.columns]


def test_upsert_creates_loads_merges_and_drops_staging() -> None:
    client = FakeClient()
    rows = box_rows(2)
    written = BigQueryWarehouse(URL, client=client).write(BOX_SCORES_SCHEMA, rows[::-1].iloc[:, ::-1])
    assert written == 2
    assert client.names() == ["create_table", "load", "query", "delete_table"]

    created = client.call("create_table")
    assert created["exists_ok"] is True
    assert created["table"].reference.path.endswith("/projects/proj-1/datasets/nba/tables/box_scores")
    check_schema_fields(created["table"].schema, BOX_SCORES_SCHEMA)
    modes = {f.name: f.mode for f in created["table"].schema}
    assert (modes["plus_minus"], modes["points"], modes["game_date"]) == ("NULLABLE", "REQUIRED", "REQUIRED")

    load = client.call("load")
    staging = load["destination"]
    assert staging.startswith("proj-1.nba._staging_box_scores_")
    assert load["job_config"].write_disposition == "WRITE_TRUNCATE"
    check_schema_fields(load["job_config"].schema, BOX_SCORES_SCHEMA)
    assert list(load["frame"].columns) == BOX_SCORES_SCHEMA.column_names

    q = client.call("query")
    assert q["sql"] == write_script("proj-1.nba.box_scores", staging, BOX_SCORES_SCHEMA)
    assert params(q["job_config"]) == {}
    assert client.call("delete_table") == {"table": staging, "not_found_ok": True}
    assert staging not in client.tables


def test_a_rebuild_write_deletes_what_it_supersedes_in_the_same_transaction() -> None:
    client = FakeClient()
    lines = pd.DataFrame([{
        "game_date": dt.date(2025, 2, 1), "player_id": 7, "player_name": "A", "market": "points", "bookmaker": "dk",
        "line": 21.5, "over_price": -110, "under_price": None, "team": "BOS", "opponent": None,
        "commence_time": pd.Timestamp("2025-02-01T19:00Z"),
    }])
    wh = BigQueryWarehouse(URL, client=client)
    assert wh.write(PROP_LINES_SCHEMA, lines, Rebuild("player_name", "line")) == 1
    q = client.call("query")
    staging = client.call("load")["destination"]
    assert q["sql"] == write_script("proj-1.nba.prop_lines", staging, PROP_LINES_SCHEMA,
                                    Rebuild("player_name", "line"))
    assert "2025" not in q["sql"] and params(q["job_config"]) == {}
    fields = {f.name: f.field_type for f in client.call("load")["job_config"].schema}
    assert fields["commence_time"] == "TIMESTAMP" and fields["line"] == "FLOAT64"
    assert fields["game_date"] == "DATE" and fields["over_price"] == "INT64"
    assert client.names()[-1] == "delete_table"


def test_a_rebuild_by_an_unknown_column_fails_before_any_client_call() -> None:
    client = FakeClient()
    with pytest.raises(WarehouseError, match="box_scores has no column 'match_id' to rebuild by"):
        BigQueryWarehouse(URL, client=client).write(BOX_SCORES_SCHEMA, box_rows(), Rebuild("match_id", "points"))
    assert client.calls == []


def test_staging_is_dropped_when_the_transaction_fails() -> None:
    client = FakeClient(query_jobs=[FakeJob(error=BadRequest("Transaction aborted"))])
    with pytest.raises(BadRequest):
        BigQueryWarehouse(URL, client=client).write(BOX_SCORES_SCHEMA, box_rows())
    staging = client.call("load")["destination"]
    assert client.names() == ["create_table", "load", "query", "delete_table"]
    assert client.call("delete_table") == {"table": staging, "not_found_ok": True}


def test_staging_is_dropped_when_the_load_fails() -> None:
    client = FakeClient(load_error=BadRequest("bad parquet"))
    with pytest.raises(BadRequest):
        BigQueryWarehouse(URL, client=client).write(BOX_SCORES_SCHEMA, box_rows())
    assert client.names() == ["create_table", "load", "delete_table"]
    assert client.call("delete_table")["table"] == client.call("load")["destination"]


def test_each_write_uses_its_own_staging_table() -> None:
    client = FakeClient()
    wh = BigQueryWarehouse(URL, client=client)
    wh.write(BOX_SCORES_SCHEMA, box_rows())
    wh.write(BOX_SCORES_SCHEMA, box_rows())
    first, second = [kw["destination"] for n, kw in client.calls if n == "load"]
    assert first != second


def test_duplicate_keys_fail_before_any_client_call(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = pd.concat([box_rows(1), box_rows(1)], ignore_index=True)
    client = FakeClient()
    with pytest.raises(WarehouseError, match="share a key"):
        BigQueryWarehouse(URL, client=client).write(BOX_SCORES_SCHEMA, rows)
    assert client.calls == []

    def no_client(**kwargs: object) -> None:
        raise AssertionError("a client was created for a write that was refused")

    monkeypatch.setattr(bigquery, "Client", no_client)
    with pytest.raises(WarehouseError, match="share a key"):
        BigQueryWarehouse(URL).write(BOX_SCORES_SCHEMA, rows)


# --- a table stored before a column was declared ---------------------------------------------------

OLDER_BOX_FIELDS = bq_schema(BOX_SCORES_SCHEMA)[:-1]  # stored before plus_minus was declared


def test_a_write_adds_the_missing_column_as_nullable_before_loading() -> None:
    table = "proj-1.nba.box_scores"
    client = FakeClient(stored={table: OLDER_BOX_FIELDS})
    assert BigQueryWarehouse(URL, client=client).write(BOX_SCORES_SCHEMA, box_rows(2)) == 2
    assert client.names() == ["create_table", "update_table", "load", "query", "delete_table"]
    update = client.call("update_table")
    assert update["fields"] == ["schema"]
    assert [(f.name, f.field_type, f.mode) for f in update["table"].schema] == [
        *((f.name, f.field_type, f.mode) for f in OLDER_BOX_FIELDS), ("plus_minus", "INT64", "NULLABLE")]
    assert update["table"].reference.path.endswith("/datasets/nba/tables/box_scores")

    client.calls.clear()  # migrated: the next write goes straight to the load
    BigQueryWarehouse(URL, client=client).write(BOX_SCORES_SCHEMA, box_rows(2))
    assert client.names() == ["create_table", "load", "query", "delete_table"]


def test_a_read_of_a_table_missing_a_declared_column_stops_before_querying() -> None:
    client = FakeClient(stored={"proj-1.nba.box_scores": OLDER_BOX_FIELDS})
    with pytest.raises(SchemaMismatch, match=r"^box_scores as stored lacks column\(s\) plus_minus, which this code "
                                             r"declares: an older version wrote it$"):
        BigQueryWarehouse(URL, client=client).read(BOX_SCORES_SCHEMA)
    assert client.names() == ["get_table"]
