"""Fill a serving models folder from the MLflow Model Registry: resolve an alias (staging,
production, canary), download that version, verify it with the backend's own loader, and publish
it atomically into the ``models/<version>/`` + ``CURRENT`` contract. The backend knows nothing of
MLflow: it follows ``CURRENT`` (``MODEL_RELOAD_INTERVAL_S``)."""
