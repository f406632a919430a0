"""The assets, named once: the graph's order, which are tables and which are models."""

from __future__ import annotations

IMAGE_STORE = "image_store"  # the observable source: the image folder or S3 prefix itself
RAW_IMAGES = "raw_images"
FEATURE_MODEL = "feature_model"
IMAGE_FEATURES = "image_features"
IMAGE_REJECTS = "image_rejects"
PCA_MODEL = "pca_model"
IMAGE_PCA = "image_pca"
FEATURE_PROBE = "feature_probe"
REPORT = "report"

DATA_ASSETS = (RAW_IMAGES, FEATURE_MODEL, IMAGE_FEATURES, IMAGE_REJECTS, PCA_MODEL, IMAGE_PCA, FEATURE_PROBE)
ASSETS = (*DATA_ASSETS, REPORT)
TABLES = (RAW_IMAGES, IMAGE_FEATURES, IMAGE_REJECTS, IMAGE_PCA, FEATURE_PROBE)
MODELS = (FEATURE_MODEL, PCA_MODEL)
DOCUMENTS = (REPORT,)
GROUP = "fruits"  # the asset group shown in the UI
