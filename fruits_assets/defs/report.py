"""report: notebooks/explore.ipynb executed against this run's outputs, shown inline by the UI
("View Notebook" on the asset page: every figure and table of the run in one page)."""

import os
import time

import nbformat
from dagster import AssetExecutionContext, MaterializeResult, asset
from nbclient import NotebookClient

from .. import settings
from ..errors import expected_error
from ..names import DATA_ASSETS, GROUP, REPORT
from ..storage.artifacts import ExecutedNotebook
from .console import ExpectedFailure
from .resources import PublishedOutputs

CODE_VERSION = "explore-notebook-v1"
TIMEOUT_S = 600  # per cell


@asset(
    name=REPORT,
    deps=list(DATA_ASSETS),
    code_version=CODE_VERSION,
    group_name=GROUP,
    kinds={"jupyter"},
    description="notebooks/explore.ipynb executed on this run's outputs: class counts, PCA, probe, neighbours.",
)
def report(context: AssetExecutionContext, published: PublishedOutputs):
    path = settings.report_notebook()
    if not os.path.exists(path):
        raise expected_error(ExpectedFailure(f"report notebook {path} not found (set FRUITS_REPORT_NOTEBOOK)"))
    notebook = nbformat.read(path, as_version=4)
    # The kernel reads this run's outputs through the catalog, from the same root as the assets.
    env = dict(os.environ, FRUITS_CATALOG_RUN=context.run_id, FRUITS_DATA_ROOT=published.root)
    started = time.perf_counter()
    NotebookClient(
        notebook, kernel_name="python3", timeout=TIMEOUT_S, resources={"metadata": {"path": os.path.dirname(path)}}
    ).execute(env=env)
    figures = sum(1 for cell in notebook.cells for out in cell.get("outputs", []) if "image/png" in out.get("data", {}))
    context.log.info(f"report: {figures} figures")
    return MaterializeResult(
        value=ExecutedNotebook(nbformat.writes(notebook).encode()),
        metadata={"figures": figures, "execute_seconds": round(time.perf_counter() - started, 2)},
    )
