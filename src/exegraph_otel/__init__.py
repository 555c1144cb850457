"""OpenTelemetry tracing and metrics for exegraph runs (in progress)."""
