"""model-exporter: a Prometheus exporter sidecar for machine-learning model quality and drift."""

__version__ = "0.1.0"
