"""Registered models load and serve outside this repository: every logged model carries its code.

The models are loaded by ``models:/<system>@production`` and served with ``mlflow models serve
--env-manager local`` by an interpreter that has every installed library but not this project: a
throw-away virtualenv whose ``.pth`` file lists the project virtualenv's site-packages. Python
appends a path named in a ``.pth`` file to ``sys.path`` without running the ``.pth`` files inside
it, so the project's editable install (an import hook started from such a file) never runs, and
the working directory is an empty folder with ``PYTHONPATH`` unset. The test first proves that
``import registry`` fails there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
import venv
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from contracts import PRODUCTION_ALIAS, SYSTEMS
from features.definitions import feature_names
from features.store import read_store
from markets import MARKETS
from serving.local import free_port
from tests.integration.conftest import spawned
from warehouse import connect

POINTS_FEATURES = feature_names(MARKETS["points"])
SERVED = "xgboost_v1"
START_SECONDS = 120.0
PRODUCTION_SIGNATURE = """
import json, sys
import mlflow
signature = mlflow.models.get_model_info(f"models:/{sys.argv[1]}@production").signature
print(json.dumps([[c.name, c.type.name, c.required] for c in signature.inputs.inputs]))
"""
LOAD_EVERY_SYSTEM = """
import json, sys
import mlflow, pandas as pd
frame = pd.read_json(sys.stdin, orient="split")
print(json.dumps({s: mlflow.pyfunc.load_model(f"models:/{s}@production").predict(frame).tolist()
                  for s in sys.argv[1:]}))
"""


@pytest.fixture
def outside(trained: dict, tmp_path: Path) -> dict:
    """A copy of the trained registry with every system in production, an interpreter without the
    repository, an empty working folder and an environment without ``PYTHONPATH``."""
    source = Path(trained["env"]["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))
    registry = tmp_path / "mlflow.db"
    shutil.copy(source, registry)  # aliases move in the copy only; artifacts are read where they are
    client = MlflowClient(f"sqlite:///{registry}")
    for system, result in trained["results"].items():
        client.set_registered_model_alias(system, PRODUCTION_ALIAS, result.version)

    env_dir = tmp_path / "clean-venv"
    venv.EnvBuilder(with_pip=False, symlinks=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "installed-libraries.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # `mlflow models serve` starts `uvicorn` from PATH: the project's would run the project's interpreter
    uvicorn = env_dir / "bin" / "uvicorn"
    uvicorn.write_text(f"#!{python}\nimport sys\nfrom uvicorn.main import main\nsys.exit(main())\n")
    uvicorn.chmod(0o755)

    cwd = tmp_path / "empty"
    cwd.mkdir()
    env = {"PATH": f"{env_dir / 'bin'}{os.pathsep}{os.defpath}", "HOME": str(tmp_path),
           "MLFLOW_TRACKING_URI": f"sqlite:///{registry}"}
    return {"python": str(python), "cwd": cwd, "env": env, "results": trained["results"]}


def _run(outside: dict, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([outside["python"], *args], cwd=outside["cwd"], env=outside["env"], input=stdin,
                          capture_output=True, text=True, timeout=300)


def _invoke(url: str, frame: pd.DataFrame) -> httpx.Response:
    return httpx.post(f"{url}/invocations", json={"dataframe_split": json.loads(frame.to_json(orient="split"))},
                      timeout=60)


def test_production_models_load_and_serve_without_the_repository(outside: dict, trained_env: dict,
                                                                   small_store: str) -> None:
    hidden = _run(outside, "-c", "import registry")
    assert hidden.returncode == 1 and "No module named 'registry'" in hidden.stderr

    rows = read_store(connect(small_store)).head(20)[POINTS_FEATURES].astype(float)
    expected = {s: mlflow.pyfunc.load_model(f"models:/{s}/{r.version}").predict(rows)
                for s, r in outside["results"].items()}

    loaded = _run(outside, "-c", LOAD_EVERY_SYSTEM, *SYSTEMS, stdin=rows.to_json(orient="split"))
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    for system, predicted in json.loads(loaded.stdout.splitlines()[-1]).items():
        np.testing.assert_allclose(predicted, expected[system], atol=1e-4, err_msg=system)

    signature = _run(outside, "-c", PRODUCTION_SIGNATURE, SERVED)
    assert json.loads(signature.stdout.splitlines()[-1]) == [[f, "double", False] for f in POINTS_FEATURES]

    url = f"http://127.0.0.1:{free_port()}"
    with spawned([outside["python"], "-m", "mlflow", "models", "serve", "-m", f"models:/{SERVED}@{PRODUCTION_ALIAS}",
                  "--env-manager", "local", "-h", "127.0.0.1", "-p", url.rsplit(":", 1)[1]], f"{url}/ping",
                 outside["cwd"].parent / "serve.log", START_SECONDS, cwd=outside["cwd"], env=outside["env"]):
        answer = _invoke(url, rows.head(3))
        assert answer.status_code == 200, answer.text[:500]
        np.testing.assert_allclose(answer.json()["predictions"], expected[SERVED][:3], atol=1e-4)
        refused = _invoke(url, rows.head(3).drop(columns=["points_avg_season"]))  # a stack trace in a 400 before
        assert refused.status_code == 400 and "stack_trace" not in refused.json()
        assert refused.json()["message"].endswith("Error: the input lacks feature points_avg_season: send all "
                                                  f"{len(POINTS_FEATURES)} features, null where a value is unknown")
