"""The image store: its layout (<split>/<label>/<file>), the inventory of a root, decoding, the
reader Spark tasks use, the upload to S3 and the sample data generator. No Dagster, no Spark."""
