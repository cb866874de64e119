"""Models-from-code entry point: MLflow runs this file to rebuild the pyfunc, so no pickled object
is stored in the registry (a registered model loads with the project's code, not a frozen copy)."""

import mlflow

from registry.points_model import PointsModel

mlflow.models.set_model(PointsModel())
