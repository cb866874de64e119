"""Issue 15's property: whatever a box-score or lines file holds (wrong types, other encodings, ragged
rows, extreme and negative values, duplicates, future dates), ingest and the checks end in a named hold
or a one-sentence refusal (``InputError`` naming the file), never another exception, and a refused
``backfill`` writes nothing.

Each example is one real game day of 2024-25 (its box scores, its lines snapshot) with a few generated
edits; the examples are bounded so the two tests take seconds.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import settings as platform
from contracts import BOX_SCORES_SCHEMA, PROP_LINES_SCHEMA
from features.backfill import backfill
from features.definitions import FEATURE_STORE_SCHEMA
from tests.conftest import SEASON_2024_25
from warehouse import connect
from warehouse.checks import COUNTED, check_days
from warehouse.ingest import BOX_SCORE_COLUMNS, InputError, read_box_scores, read_lines

DAY = "2024-10-22"
TODAY = dt.date(2024, 10, 23)
BOUNDED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _rows(path: Path, keep: str) -> list[list[str]]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    return [rows[0], *(r for r in rows[1:] if keep in ",".join(r))]


BOX = _rows(SEASON_2024_25, DAY)
LINES = _rows(platform.LINES_DEFAULT / "10_22_2024.csv.gz", "")

cells = st.one_of(
    st.integers(-10**12, 10**12).map(str),
    st.sampled_from(["", "DNP", "1.5", "1e308", "-0", "NaN", "inf", "2999-01-01", "9999-12-31", "2024-13-40",
                     "Jos\u00e9", "\u2603", "x" * 300]),
    st.text(max_size=8))
edit = st.one_of(
    st.tuples(st.just("cell"), st.integers(0, 10**6), st.integers(0, 100), cells),
    st.tuples(st.just("duplicate"), st.integers(0, 10**6)),
    st.tuples(st.just("drop"), st.integers(0, 10**6)),
    st.tuples(st.just("ragged"), st.integers(0, 10**6), st.booleans()),
    st.tuples(st.just("header"), st.integers(0, 100), cells),
    # values that parse, so that the checks see them: extreme and negative counts, later dates
    st.tuples(st.just("count"), st.integers(0, 10**6), st.sampled_from([c.upper() for c in COUNTED if c != "minutes"]
                                                                      + ["MIN"]), st.integers(-100, 1000)),
    st.tuples(st.just("date"), st.integers(0, 10**6), st.dates(dt.date(2024, 10, 23), dt.date(2999, 12, 31))),
)
encodings = st.one_of(st.just("utf-8"), st.sampled_from(["utf-8-sig", "latin-1", "utf-16", "empty", "header only"]))


def _edited(base: list[list[str]], edits: list[tuple], encoding: str) -> bytes:
    rows = [list(r) for r in base]
    for kind, *args in edits:
        i = 1 + args[0] % (len(rows) - 1) if len(rows) > 1 else 0
        if kind == "cell":
            rows[i][args[1] % len(rows[i])] = args[2]
        elif kind == "duplicate":
            rows.insert(i, list(rows[i]))
        elif kind == "drop" and len(rows) > 2:
            del rows[i]
        elif kind == "ragged":
            rows[i] = [*rows[i], "extra"] if args[1] else rows[i][:-1]
        elif kind == "header":
            rows[0][args[0] % len(rows[0])] = args[1]
        elif kind in ("count", "date"):
            column = args[1] if kind == "count" else "GAME_DATE"
            if column in rows[0] and len(rows[i]) == len(rows[0]):
                rows[i][rows[0].index(column)] = str(args[-1])
    if encoding == "empty":
        return b""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows[:1] if encoding == "header only" else rows)
    return out.getvalue().encode("utf-8" if encoding == "header only" else encoding, errors="replace")


def _refused_and_nothing_written(exc: InputError, path: Path, box: Path, lines: Path | None) -> None:
    """``exc`` is one sentence naming ``path``, and a backfill of the same files writes no table."""
    event("refused")
    assert str(path) in str(exc) and "\n" not in str(exc), str(exc)
    store = box.parent / "refused.duckdb"
    store.unlink(missing_ok=True)
    with pytest.raises(InputError):
        backfill(connect(f"duckdb:///{store}"), box, lines, progress=False)
    warehouse = connect(f"duckdb:///{store}")
    assert all(warehouse.count(s) == 0 for s in (BOX_SCORES_SCHEMA, PROP_LINES_SCHEMA, FEATURE_STORE_SCHEMA))


@BOUNDED
@given(edits=st.lists(edit, max_size=4), encoding=encodings)
def test_box_score_files_end_in_a_hold_or_one_sentence(tmp_path: Path, edits: list[tuple], encoding: str) -> None:
    path = tmp_path / "box.csv"
    path.write_bytes(_edited(BOX, edits, encoding))
    try:
        box = read_box_scores(path)
    except InputError as exc:
        _refused_and_nothing_written(exc, path, path, None)
        return
    checks = check_days(box, today=TODAY)
    assert all(isinstance(p, str) and p.startswith(str(c.game_date)) for c in checks for p in c.problems)
    held = {c.game_date for c in checks if c.problems}
    event("held" if held else "passed")
    # an impossible value that got in holds its day: a negative count, or a date after today
    negative = (box[list(COUNTED)] < 0).any(axis=1).to_numpy(bool)
    assert set(box["game_date"][negative]) | {d for d in box["game_date"] if d > TODAY} <= held


@BOUNDED
@given(edits=st.lists(edit, max_size=4), encoding=encodings)
def test_lines_files_end_in_a_refusal_or_clean_lines(tmp_path: Path, edits: list[tuple], encoding: str) -> None:
    box = read_box_scores(_written(tmp_path / "box.csv", BOX))
    path = tmp_path / "10_22_2024.csv"
    path.write_bytes(_edited(LINES, edits, encoding))
    try:
        lines = read_lines(path, box).lines
    except InputError as exc:
        _refused_and_nothing_written(exc, path, tmp_path / "box.csv", path)
        return
    event("read")
    assert lines.empty or (lines["line"].notna().all() and (lines["line"] >= 0).all())
    assert not lines.duplicated(list(PROP_LINES_SCHEMA.key)).any()


def _written(path: Path, rows: list[list[str]]) -> Path:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    path.write_text(out.getvalue())
    return path


def test_the_unedited_day_passes(tmp_path: Path) -> None:
    """The base of every example is a clean day: what holds an example is its edits."""
    assert len(BOX) > 20 and set(BOX_SCORE_COLUMNS) <= set(BOX[0])
    box = read_box_scores(_written(tmp_path / "box.csv", BOX))
    assert [c.problems for c in check_days(box, today=TODAY)] == [()]
    assert len(read_lines(_written(tmp_path / "10_22_2024.csv", LINES), box).lines)
