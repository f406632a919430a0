"""The feature model: Keras build and LiteRT conversion (driver only, imports TensorFlow lazily)
and the LiteRT runtime that Spark workers run."""
