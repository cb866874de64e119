"""The season as it is lived: the daily job, weekly retraining through the gate, and season replay."""
