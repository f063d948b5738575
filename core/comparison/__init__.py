"""Comparing runs on one evaluation split: metrics, significance and baselines (evaluate), the verdict, the report."""
