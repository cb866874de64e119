"""Retraining through the gate: challengers trained on everything up to yesterday, each promoted only
when it beats production on the most recent days.

The last ``gate_days`` game days before the retrain day are every challenger's test window, so the
gate scores challenger and champion on games neither was fitted on (the champion, trained a cadence
earlier, held out an older window and never saw these days). Game days, not calendar days: a
retrain on opening night is judged on the end of the previous season, not on an empty summer.
Systems are promoted baseline first, the ensemble last, so the ensemble's own gate compares like
with like. Every decision is audited by the registry as a promotion made by hand would be.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from mlflow.exceptions import MlflowException

from contracts import BOX_SCORES_SCHEMA, SYSTEMS
from live.defaults import GATE_DAYS
from markets import DEFAULT_MARKET, MARKETS
from registry.promotion import Decision, promote, registry_client
from warehouse import Warehouse, connect
from warehouse.ingest import InputError

RETRAINED_AS_OF = "retrained_as_of"


@dataclass
class RetrainResult:
    as_of: dt.date
    versions: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)

    @property
    def promoted(self) -> list[str]:
        return [s for s, d in self.decisions.items() if d.promoted and d.event.action == "promote"
                and d.event.from_version != d.event.version]

    def render(self) -> str:
        parts = [f"{s} v{self.versions[s]} {'promoted' if s in self.promoted else 'kept v' + str(d.event.from_version)}"
                 for s, d in self.decisions.items()]
        return f"retrained as of {self.as_of}: " + ", ".join(parts)


def last_retrain() -> dt.date | None:
    """The day of the newest retrain (the ``retrained_as_of`` tag of the newest registered versions);
    a version trained by hand counts from the day after its data ends. None before any training."""
    client = registry_client()
    days = []
    for system in (m.registered_name(s) for m in MARKETS.values() for s in SYSTEMS):
        try:
            versions = client.search_model_versions(f"name = '{system}'", order_by=["version_number DESC"],
                                                    max_results=1)
        except MlflowException:
            continue
        if not versions:
            continue
        if RETRAINED_AS_OF in versions[0].tags:
            days.append(dt.date.fromisoformat(versions[0].tags[RETRAINED_AS_OF]))
        elif versions[0].run_id:
            data_range = client.get_run(versions[0].run_id).data.tags.get("data_range", "")
            if ".." in data_range:
                days.append(dt.date.fromisoformat(data_range.split("..")[1]) + dt.timedelta(days=1))
    return max(days) if days else None


def retrain(as_of: dt.date, gate_days: int = GATE_DAYS, warehouse: Warehouse | None = None,
            experiment: str | None = None, train_start: dt.date | None = None,
            markets: tuple[str, ...] = (DEFAULT_MARKET,)) -> RetrainResult:
    """Train every system of each of ``markets`` on the games before ``as_of`` (the last ``gate_days``
    game days as the test window) with the spec's fixed parameters, then run each challenger through
    the promotion gate of its market."""
    from training.train import train_for_retrain

    if gate_days < 1:
        raise InputError(f"gate_days is {gate_days}; it must be at least 1")
    warehouse = warehouse or connect()
    days = sorted(set(warehouse.read(BOX_SCORES_SCHEMA, date_range=(as_of - dt.timedelta(days=365),
                                                                    as_of - dt.timedelta(days=1)))["game_date"]))
    if len(days) <= gate_days:
        raise InputError(f"only {len(days)} game day(s) in the year before {as_of}: a retrain needs more than "
                         f"gate_days ({gate_days})")
    results = train_for_retrain(end_date=days[-1], test_start=days[-gate_days], warehouse=warehouse,
                                experiment=experiment, start_date=train_start, markets=markets)
    outcome = RetrainResult(as_of, {s: r.version for s, r in results.items()})
    client = registry_client()
    for system, result in results.items():
        client.set_model_version_tag(system, result.version, RETRAINED_AS_OF, str(as_of))
    for system in results:  # the training order per market: baseline, members, ensemble
        outcome.decisions[system] = promote(system, results[system].version, warehouse=warehouse,
                                            reason=f"scheduled retrain as of {as_of}")
    return outcome
