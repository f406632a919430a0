"""Pure logic, testable without Spark or Dagster: PCA math and the choice of k, probe metrics,
the incremental plan and reuse keys, plots."""
