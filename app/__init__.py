"""The FastAPI server: uploads, jobs, models, predictions, evaluations. Never imports torch."""
