"""Where new game days come from: results and the schedule, points lines, who is out.

Each kind of source has one small interface (``sources.base``), so the daily loop runs the same
whether the data comes from stats.nba.com and a sportsbook API or from files an operator drops in.
"""
