"""Where new game days come from: results and the schedule, points lines, who is out.

Each kind of source has one small interface (``sources.base``), so the daily loop runs the same
whether the data comes from stats.nba.com and a sportsbook API or from files an operator drops in.
"""

from __future__ import annotations

import settings
from sources.base import Sources


def from_options(results: str, lines: str, out_list: str = "") -> Sources:
    """The daily job's sources from their options: ``nba_api``, ``shipped`` or a box-score path/glob; a
    lines drop folder, ``shipped``, ``odds_api`` or ``none``; an injury-report folder or nothing."""
    from sources.files import FileResults
    from sources.injuries import OutListFolder
    from sources.lines import DropFolderLines, OddsApiLines
    from sources.nba_stats import NbaStatsResults

    if lines in ("", "none"):
        chosen_lines = None
    else:
        chosen_lines = OddsApiLines() if lines == "odds_api" else DropFolderLines(
            settings.LINES_DEFAULT if lines == "shipped" else lines)
    if results == "nba_api":
        chosen_results = NbaStatsResults()
    else:
        chosen_results = FileResults(settings.BOX_SCORES_DEFAULT / "*.csv.gz" if results == "shipped" else results)
    return Sources(results=chosen_results,
                   lines=chosen_lines, out_list=OutListFolder(out_list) if out_list else None)
