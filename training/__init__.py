"""Training: point-in-time training sets, model fitting, evaluation, MLflow registry, OPE."""
