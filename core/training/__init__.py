"""Training (METHOD.md 5): loss, cross-validation splits, learning-rate schedule, data and the trainer."""
