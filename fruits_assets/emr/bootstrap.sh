#!/bin/bash
# EMR bootstrap action (runs on every node before applications start).
# EMR 7.x ships Python 3.9; Dagster 1.13 needs >= 3.10: install Python 3.11 in /opt/fruits/venv
# with the wheels steps need. Spark is pointed at it through the spark-env classification.
# Usage: bootstrap.sh s3://bucket/emr/bootstrap/requirements-emr.txt
set -euo pipefail
REQUIREMENTS_URI="$1"
VENV=/opt/fruits/venv

sudo dnf install -y -q python3.11 python3.11-pip python3.11-devel
sudo python3.11 -m venv "$VENV"
sudo "$VENV/bin/pip" install --quiet --upgrade pip
aws s3 cp "$REQUIREMENTS_URI" /tmp/requirements-emr.txt
sudo "$VENV/bin/pip" install --quiet -r /tmp/requirements-emr.txt
# dagster-pyspark and dagster-spark pull a PyPI pyspark over EMR's own (dagster issue 9656):
# install them without dependencies; EMR's pyspark comes from spark-submit's PYTHONPATH.
sudo "$VENV/bin/pip" install --quiet --no-deps "dagster-pyspark==0.29.27" "dagster-spark==0.29.27"
"$VENV/bin/python" -c "import dagster, ai_edge_litert, PIL, pyarrow; print('fruits-assets bootstrap ok', dagster.__version__)"
