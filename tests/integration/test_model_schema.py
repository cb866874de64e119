"""The logged model's contract as ``mlflow models serve`` enforces it: every feature an optional double
(null passes), a request that leaves one out refused in one sentence, the logged example strict JSON.

MLflow's own schema check lets an optional column be absent and drops a column the signature does not
name (with a warning in the server's log) before the model sees the rows, so the model itself refuses
a missing feature and an unknown column cannot be refused here (the worker refuses it, 422). The cheap
registry of ``tests/integration/conftest.py``, served on loopback by the project's interpreter."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from features.definitions import feature_names
from markets import MARKETS
from serving.local import free_port
from tests.integration.conftest import CHEAP_SYSTEM as SYSTEM
from tests.integration.conftest import spawned

POINTS_FEATURES = feature_names(MARKETS["points"])

MODEL = f"models:/{SYSTEM}/1"


def strict_json(text: str) -> dict:
    """``text`` parsed as JSON proper: a bare NaN or Infinity (Python's extension) fails."""
    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def served(registered: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow models serve`` of the cheap registry's v1 (it only reads the registry), started once for
    the module; its /invocations address."""
    url, folder = f"http://127.0.0.1:{free_port()}", tmp_path_factory.mktemp("served")
    with spawned([sys.executable, "-m", "mlflow", "models", "serve", "-m", MODEL, "--env-manager", "local",
                  "-h", "127.0.0.1", "-p", url.rsplit(":", 1)[1]], f"{url}/ping", folder / "serve.log", cwd=folder,
                 env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{registered}"}):
        yield f"{url}/invocations"


def ask(url: str, frame: pd.DataFrame) -> httpx.Response:
    body = {"dataframe_split": strict_json(frame.to_json(orient="split", index=False))}
    return httpx.post(url, json=body, timeout=60)


def test_every_feature_is_an_optional_double(registry: str) -> None:
    inputs = mlflow.models.get_model_info(MODEL).signature.inputs
    assert [(c.name, c.type.name, c.required) for c in inputs.inputs] == [(f, "double", False) for f in POINTS_FEATURES]


def test_the_logged_example_is_strict_json_and_is_answered(served: str, registry: str) -> None:
    example = strict_json(Path(mlflow.artifacts.download_artifacts(f"{MODEL}/serving_input_example.json"))
                          .read_text())
    assert example["dataframe_split"]["columns"] == POINTS_FEATURES
    assert any(value is None for row in example["dataframe_split"]["data"] for value in row)  # nulls, as null
    answer = httpx.post(served, json=example, timeout=60)
    assert answer.status_code == 200, answer.text[:500]
    frame = pd.DataFrame(example["dataframe_split"]["data"], columns=POINTS_FEATURES, dtype=float)
    np.testing.assert_allclose(answer.json()["predictions"], mlflow.pyfunc.load_model(MODEL).predict(frame))


def test_a_request_without_any_one_feature_is_refused_in_one_sentence(served: str) -> None:
    rows = pd.DataFrame([np.arange(len(POINTS_FEATURES), dtype=float)], columns=POINTS_FEATURES)
    rows["vegas_points_line"] = None  # a whole column of nulls is a legitimate request
    assert ask(served, rows).status_code == 200
    for feature in POINTS_FEATURES:
        answer = ask(served, rows.drop(columns=[feature]))
        body = answer.json()
        assert (answer.status_code, body["error_code"], "stack_trace" in body) == (400, "INVALID_PARAMETER_VALUE",
                                                                                   False), feature
        # MLflow's scoring server puts "Failed to predict data '<the rows>'. Error: " before the model's sentence
        assert body["message"].endswith(f"Error: the input lacks feature {feature}: send all {len(POINTS_FEATURES)} "
                                        "features, null where a value is unknown"), body["message"][-300:]


def test_an_unknown_column_is_dropped_by_mlflow_before_the_model(served: str) -> None:
    rows = pd.DataFrame([np.arange(len(POINTS_FEATURES), dtype=float)], columns=POINTS_FEATURES)
    plain, extra = ask(served, rows), ask(served, rows.assign(points_avg_last_3=1.0))
    assert (plain.status_code, extra.status_code) == (200, 200)
    assert extra.json() == plain.json()
