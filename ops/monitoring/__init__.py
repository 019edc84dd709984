"""The monitoring part of the stack: Prometheus, Alertmanager and exporters (pure
builders of their configuration here; ops.monitoring.local runs them)."""
