"""Tables, the DuckDB and BigQuery backends, and the ingest of box scores and lines."""

from __future__ import annotations

from warehouse.base import DateRange, Warehouse, WarehouseError


def connect(url: str | None = None) -> Warehouse:
    """The backend named by ``url`` (default: ``WAREHOUSE_URL``, else the embedded DuckDB file)."""
    import settings

    url = url or settings.warehouse_url()
    if url.startswith("duckdb:///"):
        from warehouse.duckdb_backend import DuckDBWarehouse

        return DuckDBWarehouse(url)
    if url.startswith("bigquery://"):
        from warehouse.bigquery_backend import BigQueryWarehouse

        return BigQueryWarehouse(url)
    raise WarehouseError(
        f"WAREHOUSE_URL is {url!r}; expected duckdb:///PATH or bigquery://PROJECT/DATASET")


__all__ = ["DateRange", "Warehouse", "WarehouseError", "connect"]
