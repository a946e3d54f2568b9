"""Monitoring: the Grafana dashboard's source and the local Prometheus launcher (the chart ships their output)."""
