"""Models-from-code entry point: MLflow runs this file to rebuild the pyfunc, so no pickled wrapper
is stored in the registry. The format's modules it imports travel with every logged model
(``code_paths``, see ``points_model.model_code_paths``), so it loads without this repository."""

import mlflow

from registry.points_model import PointsModel

mlflow.models.set_model(PointsModel())
