"""Matching the names a sportsbook prints to the ids the box scores use."""

from __future__ import annotations

import re
import unicodedata

TEAM_TRICODES = {
    "Atlanta Hawks": "ATL", "Boston Celtics": "BOS", "Brooklyn Nets": "BKN", "Charlotte Hornets": "CHA",
    "Chicago Bulls": "CHI", "Cleveland Cavaliers": "CLE", "Dallas Mavericks": "DAL", "Denver Nuggets": "DEN",
    "Detroit Pistons": "DET", "Golden State Warriors": "GSW", "Houston Rockets": "HOU",
    "Indiana Pacers": "IND", "Los Angeles Clippers": "LAC", "LA Clippers": "LAC",
    "Los Angeles Lakers": "LAL", "Memphis Grizzlies": "MEM", "Miami Heat": "MIA", "Milwaukee Bucks": "MIL",
    "Minnesota Timberwolves": "MIN", "New Orleans Pelicans": "NOP", "New York Knicks": "NYK",
    "Oklahoma City Thunder": "OKC", "Orlando Magic": "ORL", "Philadelphia 76ers": "PHI",
    "Phoenix Suns": "PHX", "Portland Trail Blazers": "POR", "Sacramento Kings": "SAC",
    "San Antonio Spurs": "SAS", "Toronto Raptors": "TOR", "Utah Jazz": "UTA", "Washington Wizards": "WAS",
}

# Books print some players under a short or long form of the name the league uses.
NICKNAMES = {
    "nicolas claxton": "nic claxton", "herb jones": "herbert jones", "cam johnson": "cameron johnson",
    "gg jackson": "gregory jackson", "moe wagner": "moritz wagner", "kenyon martin": "kj martin",
    "cam thomas": "cameron thomas", "alex sarr": "alexandre sarr",
    "bub carrington": "carlton carrington", "ron holland": "ronald holland",
    "bones hyland": "nahshon hyland",
    "bj boston": "brandon boston", "james huff": "jay huff",
}

_SUFFIX = re.compile(r"\b(jr|sr|ii|iii|iv|v)\b")


def normalize_player_name(name: str) -> str:
    """Lower case, no accents, no punctuation, no generational suffix, nicknames resolved."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = re.sub(r"[.'\u2019`-]", "", text.lower())
    text = _SUFFIX.sub("", text)
    text = " ".join(text.split())
    return NICKNAMES.get(text, text)
