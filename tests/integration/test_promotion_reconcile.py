"""A promotion interrupted half way is finished or undone, and rollback still finds the earlier version.

The cheap registry of ``tests/integration/conftest.py`` (small moving-average versions, loaded and
scored by the real gate); the failure is injected by making one MLflow client call raise after the
alias has moved.
"""

from __future__ import annotations

import warnings

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

import cli
from contracts import PRODUCTION_STAGE, SYSTEMS
from registry.promotion import PromotionError, history, production_version, promote, rollback
from tests.integration.conftest import CHEAP_SYSTEM
from warehouse import Warehouse, connect

SYSTEM = CHEAP_SYSTEM


def stage_holders(client: MlflowClient) -> list[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return [str(v.version) for v in client.search_model_versions(f"name = '{SYSTEM}'")
                if v.current_stage == PRODUCTION_STAGE]


def fail_after_the_alias_moved(monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    """``method`` of the MLflow client raises as a lost tracking server would (``create_run``: the
    audit record of the event, written after the alias and the stage moved)."""

    def broken(self, *args, **kwargs):
        raise MlflowException("API request to the tracking server failed: connection reset")

    monkeypatch.setattr(MlflowClient, method, broken)


def promote_forced(version: str, store: Warehouse, reason: str) -> None:
    promote(SYSTEM, version, force=True, reason=reason, warehouse=store)


def test_rollback_after_an_audit_failure_finds_the_earlier_version(
        registry: str, october_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client, store = MlflowClient(), connect(october_store)
    assert promote(SYSTEM, "1", warehouse=store).promoted  # the baseline needs no champion
    promote_forced("2", store, "second")
    with monkeypatch.context() as patch:
        fail_after_the_alias_moved(patch, "create_run")
        with pytest.raises((PromotionError, MlflowException)) as interrupted:
            promote_forced("3", store, "third")
    assert production_version(client, SYSTEM) == "3"  # the alias moved, its event was never written

    back = rollback(SYSTEM, reason="third misbehaves")
    assert (back.event.from_version, back.event.version) == ("3", "2")
    assert back.message.splitlines()[0].startswith("reconciled: recorded the interrupted promote of "
                                                   f"{SYSTEM} v2 -> v3")
    assert production_version(client, SYSTEM) == "2" and stage_holders(client) == ["2"]
    events = history(SYSTEM)
    assert [(e.action, e.from_version, e.version) for e in events] == [
        ("promote", None, "1"), ("promote", "1", "2"), ("promote", "2", "3"), ("rollback", "3", "2")]
    assert (events[2].reason, events[2].who, events[2].forced) == ("third", "ops", True)
    assert isinstance(interrupted.value, PromotionError)
    assert str(interrupted.value) == (
        f"the promote of {SYSTEM} to v3 was interrupted (API request to the tracking server failed: connection "
        f"reset); `python cli.py reconcile --system {SYSTEM}` finishes or undoes it, as the next promote or "
        "rollback does first")


def test_alias_and_stage_left_apart_are_rejoined_when_the_promotion_is_retried(
        registry: str, october_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client, store = MlflowClient(), connect(october_store)
    promote(SYSTEM, "1", warehouse=store)
    with monkeypatch.context() as patch:
        fail_after_the_alias_moved(patch, "transition_model_version_stage")
        with pytest.raises((PromotionError, MlflowException)):  # the old code let MLflow's error through
            promote_forced("2", store, "second")
    assert (production_version(client, SYSTEM), stage_holders(client)) == ("2", ["1"])

    again = promote(SYSTEM, "2", warehouse=store)  # what an operator does next: the same command
    assert again.promoted and again.message.endswith("v2 is already in production: nothing changed")
    assert (production_version(client, SYSTEM), stage_holders(client)) == ("2", ["2"])
    assert [(e.action, e.version, e.reason) for e in history(SYSTEM)][-1] == ("promote", "2", "second")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        by_stage = mlflow.pyfunc.load_model(f"models:/{SYSTEM}/{PRODUCTION_STAGE}")
    assert by_stage.metadata.run_id == client.get_model_version_by_alias(SYSTEM, "production").run_id


def run_cli(capsys: pytest.CaptureFixture, *args: str) -> str:
    """The command as a user types it, in this process (the registry is this test's environment)."""
    assert cli.main(list(args)) == 0
    return capsys.readouterr().out


def test_cli_reconcile_drops_a_move_that_never_reached_the_alias(
        registry: str, october_store: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    client = MlflowClient()
    promote(SYSTEM, "1", warehouse=connect(october_store))
    with monkeypatch.context() as patch:
        fail_after_the_alias_moved(patch, "set_registered_model_alias")  # the alias itself fails to move
        with pytest.raises(PromotionError):
            promote_forced("2", connect(october_store), "second")
    shown = run_cli(capsys, "history", "--system", SYSTEM)
    assert "unconfirmed:" in shown and "v1 -> v2" in shown

    repaired = run_cli(capsys, "reconcile").splitlines()  # every system
    assert repaired[SYSTEMS.index(SYSTEM)].startswith(f"{SYSTEM}: dropped the promote of {SYSTEM} to v2 (")
    assert repaired[SYSTEMS.index(SYSTEM)].endswith("it stopped before the alias moved, production is still v1")
    assert [(e.action, e.version) for e in history(SYSTEM)] == [("promote", "1")]
    assert (production_version(client, SYSTEM), stage_holders(client)) == ("1", ["1"])
    assert run_cli(capsys, "reconcile", "--system", SYSTEM) == f"{SYSTEM}: alias, stage and history agree\n"
    assert "unconfirmed" not in run_cli(capsys, "history", "--system", SYSTEM)
