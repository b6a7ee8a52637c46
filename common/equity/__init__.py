"""The equity audit: per-group metrics, pooling, intervals, consistency and reading."""
