"""Command lines: ``fruits-assets`` (bucket, EMR cluster, gc, Dagster home) and the run summary."""
