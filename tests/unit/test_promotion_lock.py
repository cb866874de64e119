"""Where the promotion lock lives, and the one-sentence errors when it cannot be had (issue 9, row 10).

The PostgreSQL lock shared by several machines is shown with a real server in
``tests/integration/test_team_setup.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest

import cli
from registry.locks import promotion_lock
from registry.promotion import PromotionError, _registry_lock, rollback
from serving.local import free_port


@pytest.fixture(autouse=True)
def lock_settings(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A short wait, no team lock, and MLflow's global tracking URI put back afterwards."""
    monkeypatch.setenv("PROMOTION_LOCK_WAIT", "0.2")
    monkeypatch.delenv("PROMOTION_LOCK_URL", raising=False)
    # were the lock missing, the registry call after it must fail fast instead of retrying for minutes
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    before = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(before)


def test_both_spellings_of_one_sqlite_store_share_one_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    with _registry_lock("xgboost_v1"):  # a promotion in progress, the store spelled absolutely
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlruns/mlflow.db")
        with pytest.raises(PromotionError, match=r"^another promotion or rollback of xgboost_v1 has held the lock "
                                                 r"at .*/mlruns/mlflow\.db\.promote-xgboost_v1\.lock for more than "
                                                 r"0\.2 s: try again when it has finished$"):
            rollback("xgboost_v1")
        with promotion_lock("catboost_v8", "sqlite:///mlruns/mlflow.db", None, wait_s=0.2):
            pass  # one lock per system: another system promotes meanwhile
    assert (tmp_path / "mlruns" / "mlflow.db.promote-xgboost_v1.lock").exists()


def test_a_tracking_server_without_a_shared_lock_is_refused_in_one_sentence(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://ops:s3cret@127.0.0.1:9/")
    assert cli.main(["rollback", "--system", "xgboost_v1"]) == 2
    assert capsys.readouterr().err == (
        "rollback: promotions against the tracking store http://ops@127.0.0.1:9/ need a lock that every promoting "
        "machine shares: set PROMOTION_LOCK_URL to postgresql://USER@HOST/DB (the password in PGPASSWORD or "
        "~/.pgpass; or file:///DIR when every promotion runs on this machine)\n")


def test_a_lock_folder_for_one_machine_serialises_promotions_against_a_server(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("PROMOTION_LOCK_URL", (tmp_path / "locks").as_uri())
    with _registry_lock("xgboost_v1"), pytest.raises(PromotionError, match=r"held the lock at .*/locks/promote-"):
        rollback("xgboost_v1")


@pytest.mark.parametrize(("name", "value", "message"), [
    ("PROMOTION_LOCK_URL", "redis://ops:s3cret@cache:6379/0",
     "PROMOTION_LOCK_URL is 'redis://ops@cache:6379/0'; expected postgresql://USER@HOST/DB or file:///DIR"),
    ("PROMOTION_LOCK_WAIT", "soon",
     "PROMOTION_LOCK_WAIT is 'soon'; expected seconds to wait, above 0 and at most 86400"),
    ("PROMOTION_LOCK_WAIT", "0", "PROMOTION_LOCK_WAIT is '0'; expected seconds to wait, above 0 and at most 86400"),
    ("PROMOTION_LOCK_URL", "postgresql://ops:s3cret@127.0.0.1:{port}/locks",
     'cannot reach the promotion lock at postgresql://ops@127.0.0.1:{port}/locks: connection to server at '
     '"127.0.0.1", port {port} failed: Connection refused'),
])
def test_a_bad_or_unreachable_lock_is_one_sentence_naming_it(name: str, value: str, message: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv(name, value.format(port=port))
    with pytest.raises(PromotionError) as raised:
        rollback("xgboost_v1")
    assert str(raised.value).startswith(message.format(port=port))
    assert "s3cret" not in str(raised.value) and "\n" not in str(raised.value)
