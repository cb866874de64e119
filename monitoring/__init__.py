"""Live operation's feedback: grade stored predictions, compute monitoring metrics, raise alerts, log to MLflow."""
