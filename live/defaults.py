"""The defaults of the live operation, one definition each.

The library (``live/daily.py``, ``live/retrain.py``, ``live/replay.py``), the command line's options
and their help read them from here; the MLproject file cannot import, so a test holds its defaults
to these. Only constants, so the command line reads them before any heavy import.
"""

from __future__ import annotations

import datetime as dt

RETRAIN_EVERY_DAYS = 7  # days between retrains through the gate; 0: never
GATE_DAYS = 14  # the most recent game days a retrained challenger is judged on
TRAIN_YEARS = 3  # seasons of history each replay retrain fits on (speed; older seasons add little)

# the season replay's range: the 2024-25 evenings the shipped daily-fantasy lines cover
REPLAY_START = dt.date(2024, 10, 22)
REPLAY_END = dt.date(2025, 1, 13)

# where each job takes results and lines from (``sources.from_options``)
DAILY_RESULTS, DAILY_LINES = "nba_api", "none"
REPLAY_RESULTS, REPLAY_LINES = "shipped", "shipped"
