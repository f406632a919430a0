# The image of compose.yaml's code, daemon and webserver services (docs/serve.md): what `make serve`
# needs on a machine, in a container. Build: docker compose build.
FROM python:3.11-slim-bookworm

# Java 17 for Spark; native BLAS for Spark ML (without it the probe's logistic regression is ~20x
# slower); procps for Spark's scripts. The same packages `make demo` installs.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       openjdk-17-jre-headless libopenblas0-pthread procps \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/fruits-assets
COPY pyproject.toml setup.cfg README.md ./
COPY fruits_assets ./fruits_assets
COPY notebooks ./notebooks
# Editable, as in `make install`: the report asset executes notebooks/explore.ipynb of this folder.
RUN pip install --no-cache-dir -e .

# Paths inside the container; compose.yaml mounts the volumes there. The webserver and the code
# server listen on every interface of the container; compose publishes the UI on 127.0.0.1 only.
ENV DAGSTER_HOME=/opt/dagster/home \
    FRUITS_DATA_ROOT=/data \
    FRUITS_IMAGES_DIR=/images \
    FRUITS_SERVE_DIR=/opt/dagster/serve \
    FRUITS_SERVE_HOST=0.0.0.0 \
    PYTHONWARNINGS=ignore::FutureWarning

CMD ["python", "-m", "fruits_assets.cli.serve", "status"]
