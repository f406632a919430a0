#!/bin/bash
# EMR bootstrap action (runs on every node before applications start).
# EMR 7.x ships Python 3.9; Dagster 1.13 needs >= 3.10: install Python 3.11 in /opt/fruits/venv
# with the wheels steps need. Spark is pointed at it through the spark-env classification.
# Every package comes from a hashed lock (`make emr-requirements`): pip refuses any file whose
# sha256 is not in it, and --no-deps installs the lock as it is, nothing resolved on the node.
# Usage: bootstrap.sh s3://BUCKET/emr/bootstrap/requirements-pip.txt s3://BUCKET/emr/bootstrap/requirements-emr.txt
set -euo pipefail
PIP_LOCK_URI="$1"
NODES_LOCK_URI="$2"
VENV=/opt/fruits/venv

sudo dnf install -y -q python3.11 python3.11-pip python3.11-devel
sudo python3.11 -m venv "$VENV"
aws s3 cp "$PIP_LOCK_URI" /tmp/requirements-pip.txt
aws s3 cp "$NODES_LOCK_URI" /tmp/requirements-emr.txt
# A current pip first (the distribution's is older than some wheels' metadata), itself hashed.
sudo "$VENV/bin/pip" install --quiet --require-hashes --no-deps -r /tmp/requirements-pip.txt
# The lock includes dagster-pyspark and dagster-spark without their PyPI pyspark (dagster issue
# 9656): EMR's own pyspark comes from spark-submit's PYTHONPATH.
sudo "$VENV/bin/pip" install --quiet --require-hashes --no-deps -r /tmp/requirements-emr.txt
"$VENV/bin/python" -c "import dagster, ai_edge_litert, PIL, pyarrow; print('fruits-assets bootstrap ok', dagster.__version__)"
