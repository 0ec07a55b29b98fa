"""Scoring on the test split and the metrics.json record."""
