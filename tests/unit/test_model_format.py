"""The logged model's signature and input example, from small frames."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from features.definitions import FEATURE_NAMES
from registry.points_model import feature_signature, input_example


def test_the_signature_is_the_feature_list_every_one_an_optional_double() -> None:
    signature = feature_signature(["points_avg_last_5", "vegas_points_line"])
    assert signature.inputs.to_dict() == [{"type": "double", "name": "points_avg_last_5", "required": False},
                                          {"type": "double", "name": "vegas_points_line", "required": False}]
    assert feature_signature(FEATURE_NAMES).inputs.input_names() == list(FEATURE_NAMES)


def test_the_example_takes_the_most_complete_rows_and_writes_nulls_as_json_null() -> None:
    frame = pd.DataFrame({"a": [np.nan, 1.0, 2.0, np.nan], "b": [np.nan, np.nan, 3.0, 4.0]})
    example = input_example(frame, rows=3)
    assert example.to_dict(orient="split")["data"] == [[2.0, 3.0], [1.0, None], [None, 4.0]]
    json.dumps(example.to_dict(orient="split"), allow_nan=False)  # strict JSON: raises on a NaN
