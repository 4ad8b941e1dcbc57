"""Progressive delivery of model versions: a weighted canary at the edge, judged by Prometheus
against the stable version over the same intervals, promoted or rolled back (``analysis``)."""
