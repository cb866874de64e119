"""Figures of the season's monitoring run, redrawn from the warehouse tables each day."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only: the daily job runs on servers with no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from contracts import GRADED  # noqa: E402

RELIABILITY_BINS = np.linspace(0.0, 1.0, 11)


def rolling_mae(series: pd.DataFrame) -> Figure:
    """7-day (solid) and 30-day (dashed) MAE per system over the game days; ``series`` holds
    ``game_date, system, period, value`` rows of the ``mae`` metric."""
    fig, ax = plt.subplots(figsize=(9, 5))
    for i, (system, rows) in enumerate(series.groupby("system", sort=True)):
        color = f"C{i}"
        for period, style in (("7d", "-"), ("30d", "--")):
            line = rows[rows["period"] == period].sort_values("game_date")
            if len(line):
                ax.plot(pd.to_datetime(line["game_date"]), line["value"], style, color=color,
                        label=f"{system} {period}")
    ax.set(xlabel="game date", ylabel="MAE (points)", title="Rolling MAE of graded predictions")
    if ax.get_legend_handles_labels()[0]:  # nothing graded yet on the season's first days
        ax.legend(fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def reliability_table(grades: pd.DataFrame) -> pd.DataFrame:
    """Per system and ``p_over`` bin: the mean predicted probability, the observed frequency of the
    over and the count (pushes have no over/under truth and are left out)."""
    judged = grades[(grades["outcome"] == GRADED) & grades["p_over"].notna() & grades["line"].notna()
                    & (grades["actual_points"] != grades["line"])]
    judged = judged.assign(
        bin=np.clip(np.digitize(judged["p_over"].to_numpy(float), RELIABILITY_BINS[1:-1]), 0, 9),
        over=(judged["actual_points"] > judged["line"]).astype(float))
    return (judged.groupby(["system", "bin"], sort=True)
            .agg(predicted=("p_over", "mean"), observed=("over", "mean"), n=("over", "size")).reset_index())


def reliability(grades: pd.DataFrame) -> Figure:
    """Predicted ``p_over`` against how often the over happened: on the diagonal when calibrated."""
    table = reliability_table(grades)
    fig, ax = plt.subplots(figsize=(6, 6))
    for system, rows in table.groupby("system", sort=True):
        ax.plot(rows["predicted"], rows["observed"], marker="o", label=f"{system} ({int(rows['n'].sum())})")
    ax.plot([0, 1], [0, 1], color="black", lw=1, ls="--")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted p_over", ylabel="observed frequency of the over",
           title="p_over reliability, season to date")
    if len(table):
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
