"""Where a grid's cells are computed: in this process (``Runner.run_grid``), or as tasks of a Ray
cluster (:func:`run_on_ray`; ``rbi run --executor ray [--address ADDR]``).

On Ray each cell is one task (one CPU; one GPU when the run's device is CUDA) that builds its own
:class:`~robustbench_interp.runner.Runner` on the shared store and computes the cell with its scores
(and, for a searched cell, its control). The store's claims (:mod:`robustbench_interp.claims`) keep
two tasks, or a task and a serial run on another machine, from computing one cell twice: a task
that finds a cell claimed (a control shared by several cells) waits until it is stored. The store
must therefore be a folder every node of the cluster sees (a local folder on a one-machine cluster,
a shared file system otherwise). Cells are sent as their JSON config, never pickled objects, so a
node needs only this package (and any plug-in the cells name) installed.

Ray is an optional dependency: ``pip install 'robustbench_interp[ray]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from robustbench_interp.config import CellConfig
from robustbench_interp.errors import ConfigError
from robustbench_interp.records import CellRecord
from robustbench_interp.store import Store

#: Progress callback of a grid: ``progress("grid", done, total, {})``.
GridProgress = Callable[[str, int, int, dict[str, float]], None]


def import_ray() -> Any:
    """The ray module, or a ConfigError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray, which is not installed; "
                          "pip install 'robustbench_interp[ray]' (or drop --executor ray)") from None
    return ray


def _compute(config: dict[str, Any], store_root: str, scorers: list[str], options: dict[str, Any]) -> str:
    """A Ray task: compute one cell (from its config) with its scores in the shared store."""
    from robustbench_interp.runner import Runner

    runner = Runner(Store(store_root), **options)
    record = runner.run_grid([CellConfig.from_dict(config)], score_with=scorers)[0]
    return record.status


def run_on_ray(
    cells: Sequence[CellConfig],
    *,
    store: Store,
    scorers: Sequence[str] = (),
    options: dict[str, Any] | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    progress: GridProgress | None = None,
) -> list[CellRecord]:
    """Compute ``cells`` as Ray tasks against ``store`` and return their records, in order.

    ``options`` are the :class:`~robustbench_interp.runner.Runner` options each task builds its
    runner with (device, evaluation sizes, retry_failed, ...; plain values). ``address`` joins a
    running cluster (``ray start --head`` prints it); None starts a local one with ``num_cpus``
    (all of this machine's when None), shut down again at the end. ``progress`` hears of each
    finished cell: one view of the whole grid, whichever node computed what.
    """
    ray = import_ray()
    options = dict(options or {})
    device = str(options.get("device", "cpu"))
    gpus = 1 if device.startswith("cuda") else 0
    root = str(Path(store.root).resolve())
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                 log_to_driver=True, configure_logging=False)
    try:
        if gpus and not ray.cluster_resources().get("GPU"):
            raise ConfigError(f"--device {device} with --executor ray, but the Ray cluster has no GPU; "
                              "add GPU nodes, or run with --device cpu")
        task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_compute)
        pending = {task.remote(cell.to_dict(), root, list(scorers), options): cell for cell in cells}
        total, done = len(cells), 0
        if progress is not None:
            progress("grid", 0, total, {})
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                pending.pop(ref)
                ray.get(ref)  # a task's own error (not a cell's failure, which is stored) surfaces here
                done += 1
                if progress is not None:
                    progress("grid", done, total, {})
    finally:
        if started_here:
            ray.shutdown()
    records = [store.get(cell.cell_id) for cell in cells]
    missing = [cell.label for cell, record in zip(cells, records) if record is None]
    if missing:
        raise ConfigError(f"the Ray tasks finished but {len(missing)} cells are not in {root} ({', '.join(missing[:3])}"
                          "...): the store must be a folder every node of the cluster sees")
    return [r for r in records if r is not None]


__all__ = ["import_ray", "run_on_ray"]
