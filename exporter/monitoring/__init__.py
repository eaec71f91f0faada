"""The monitoring stack as code: alerting and recording rules, Grafana dashboards.

``model-exporter generate`` renders them into ``deploy/`` (``--check`` verifies the committed
files are current). Thresholds and durations live in one place, :class:`Thresholds`, which a
YAML file can override (``--thresholds``).
"""
