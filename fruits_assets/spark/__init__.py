"""Code that Spark runs: the featurization tasks, PCA moments and projection, the probe. Tasks
import NumPy, Pillow, pyarrow and LiteRT only (never Dagster or TensorFlow)."""
