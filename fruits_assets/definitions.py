"""The code location: one asset graph, resources picked by deployment (FRUITS_DEPLOYMENT=local|emr).

``defs`` is built on first access (PEP 562), so importing this module for ``build_definitions``
(tests, ``fruits-assets gc``) reads no setting until it is asked for.
"""

from __future__ import annotations

import warnings
from typing import cast

from dagster import AssetsDefinition, Definitions, in_process_executor, load_assets_from_modules
from dagster_shared.utils.warnings import BetaWarning, PreviewWarning, SupersessionWarning

from . import settings
from .defs import feature_model, features, pca, probe, raw_images, report
from .defs.automation import automation_sensor, conditions, image_store, images_sensor, refresh_job
from .defs.console import console, use_as_default
from .defs.deployments import emr_resources, local_resources
from .defs.run_config import CONFIG_BY_OP
from .errors import install_cli_hooks

# Chosen knowingly: the EMR step launcher (superseded by Pipes, which cannot keep a cluster and an
# IO manager: docs/architecture.md), asset `kinds` and data versions (beta/preview in 1.13).
for _category in (SupersessionWarning, BetaWarning, PreviewWarning):
    warnings.filterwarnings("ignore", category=_category)

STAGES = (raw_images, feature_model, features, pca, probe, report)  # one module per stage, in graph order
install_cli_hooks({op: list(model.model_fields) for op, model in CONFIG_BY_OP.items()})
use_as_default()


def build_definitions(deployment: str | None = None) -> Definitions:
    deployment = deployment or settings.deployment()
    settings.check_not_redirected()
    if deployment == "emr":
        resources, executor = emr_resources(), None
    else:
        # One process, one JVM for the whole run: Spark start-up is paid once, not per step.
        resources, executor = local_resources(), in_process_executor
    by_asset = conditions()
    assets = [
        cast(AssetsDefinition, stage).map_asset_specs(
            lambda spec: spec.replace_attributes(automation_condition=by_asset[spec.key.to_user_string()])
        )
        for stage in load_assets_from_modules(list(STAGES))
    ]
    where = settings.instance_description() if deployment == "local" else f"deployment {deployment}"
    return Definitions(
        assets=[image_store, *assets],
        resources=resources,
        executor=executor,
        jobs=[refresh_job],
        sensors=[images_sensor(), automation_sensor()],
        loggers={"console": console},
        # Which instance and outputs this code uses, for tools reading the definitions; the UI shows the
        # same line in every run's log and on raw_images' materializations.
        metadata={"instance": where},
    )


def __getattr__(name: str) -> Definitions:
    if name == "defs":
        value = globals()["defs"] = build_definitions()
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "defs"])
