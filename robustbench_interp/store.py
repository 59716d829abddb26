"""Per-cell results on disk: written atomically, read back, resumed.

Layout under ``root``::

    cells/<cell_id>.json                    one record per manipulation cell (CellConfig.cell_id)
    scores/<cell_id>/<interpreter key>.json one record per (manipulated cell, scored interpreter)
    weights/<cell_id>.pt                    the manipulated state_dict (weights_path)
    artifacts/<cell_id>/<name>              any other per-cell file (artifact_path)

**Atomic writes.** Every file is written to a temporary file in the same directory, flushed and
fsync'ed, then moved over its final name with ``os.replace`` (atomic on POSIX and Windows). A
process killed mid-write leaves at worst a hidden ``.*.tmp`` file, which is never read as a record;
the previous version of the record, if any, is intact. Files that do not parse as a complete record
(written by other means, truncated by a full disk) are skipped with a warning, never fatal.

**Resume and failures.** :meth:`Store.has` says whether a cell needs no computation: an ok record
always counts as done; a failed one (``put_failed``: e.g. a broken plug-in interpreter) counts as
done only with ``retry_failed=False``. The runner retries failed cells by default (a fixed plug-in,
a corrected path or size, is then computed, never answered with the old reason); the CLI's
``--keep-failed`` keeps them.

**Transfer scores.** Scoring interpreter J on a manipulated cell writes its own file
``scores/<cell_id>/<J>.json``; it never rewrites the cell record nor the other interpreters' scores.
Adding an interpreter later computes only its own scores (``has_score`` is False for it alone). The
adaptive score (J = the attacking interpreter) is stored the same way, so the transfer matrix has a
uniform diagonal.

Records hold numbers as numbers (floats, ints, lists, nested dicts), never formatted strings.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator, Mapping
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from robustbench_interp.config import BENCHMARK_VERSION, CellConfig, normalize_interpreter_params
from robustbench_interp.errors import ConfigError
from robustbench_interp.fileio import (  # noqa: F401  (re-exported: the store's file primitives)
    atomic_save_state_dict,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    load_state_dict_safe,
)
from robustbench_interp.records import (
    STATUS_FAILED,
    STATUS_NOT_ATTACKABLE,
    STATUS_OK,
    CellRecord,
    ScoreRecord,
)

if TYPE_CHECKING:
    import pandas as pd

_META_COLUMNS = ("cell_id", "label", "status", "reason", "created", "version", "control_cell")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class StoreWarning(UserWarning):
    """A file in the store could not be read as a record and was skipped."""


# --------------------------------------------------------------------------- record helpers


def plain(value: Any, where: str = "metrics") -> Any:
    """``value`` as plain JSON numbers: tensors / numpy scalars and arrays become floats, ints, lists.

    A string that reads as a number ("87.5%", " 3.0") is refused: results hold numbers, never
    formatted strings (STYLE: numbers stay numbers). Names and reasons under the attacker's
    ``chosen`` and ``search`` (a surrogate's name, why a configuration dropped out) and under
    ``environment`` (torch's version, the device) are kept as they are; any other string is refused.
    """
    if isinstance(value, Mapping):
        return {str(k): plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, where) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if hasattr(value, "tolist"):  # torch.Tensor, numpy arrays and scalars
        return plain(value.tolist(), where)
    if isinstance(value, str):
        if _reads_as_number(value) or not where.startswith(_NAMED):
            raise ConfigError(f"{where} is the string {value!r}; store the number itself, not a formatted string")
        return value
    raise ConfigError(f"{where} has a {type(value).__name__} value; store numbers, lists or dicts of numbers")


#: Where a record may hold names and reasons as strings: what the attacker chose and tried, and
#: what computed the cell.
_NAMED = ("metrics.chosen", "metrics.search", "metrics.environment")


def _reads_as_number(text: str) -> bool:
    try:
        float(text.strip().rstrip("%").replace(",", ""))
    except ValueError:
        return False
    return True


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _read_record(path: Path, kind: type[CellRecord] | type[ScoreRecord]) -> Any:
    """The record in ``path``, or None with a :class:`StoreWarning` if it is not a complete one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        warnings.warn(f"skipping unreadable store file {path}: {exc}", StoreWarning, stacklevel=3)
        return None
    try:
        return kind.from_dict(data)
    except ConfigError as exc:
        warnings.warn(f"skipping store file {path}: not a complete record ({exc})", StoreWarning, stacklevel=3)
        return None


def _filter_value(value: Any) -> Any:
    if isinstance(value, tuple):  # e.g. classes=(386, 555), stored as a JSON list
        return [_filter_value(v) for v in value]
    return value.value if isinstance(value, Enum) else value


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


def _add_metrics(row: dict[str, Any], record: Mapping[str, Any]) -> None:
    """Add the record's metrics to a dataframe row, flattened with dots; a metric whose name is
    already a column gets the prefix ``metrics.``."""
    metrics: dict[str, Any] = {}
    _flatten("", record.get("metrics") or {}, metrics)
    for k, v in metrics.items():
        row[f"metrics.{k}" if k in row else k] = v


def interpreter_key(interpreter: str, interpreter_params: Any = ()) -> str:
    """File-name key of a scored interpreter: its name when that is a safe file name and it has no
    parameters, else the sanitised name plus 8 hex of a hash of (name, parameters)."""
    params = normalize_interpreter_params(interpreter_params)
    if _SAFE_NAME.match(interpreter) and not params:
        return interpreter
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", interpreter)[:64]
    digest = hashlib.sha256(json.dumps([interpreter, params], sort_keys=True).encode()).hexdigest()[:8]
    return f"{safe}-{digest}"


# --------------------------------------------------------------------------- the store


class Store:
    """A directory of per-cell results (see the module docstring for the layout and guarantees)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # ---- cells

    def cell_path(self, cell_id: str) -> Path:
        return self.root / "cells" / f"{_checked_id(cell_id)}.json"

    def get(self, cell_id: str) -> CellRecord | None:
        """The record of ``cell_id``, or None if absent or unreadable (a warning says which)."""
        record = _read_record(self.cell_path(cell_id), CellRecord)
        if record is not None and record.cell_id != cell_id:
            warnings.warn(f"skipping {self.cell_path(cell_id)}: it holds cell {record['cell_id']!r}",
                          StoreWarning, stacklevel=2)
            return None
        return record

    def status(self, cell_id: str) -> str | None:
        """``"ok"``, ``"failed"``, ``"not_attackable"`` or None (no readable record)."""
        record = self.get(cell_id)
        return None if record is None else record.status

    def has(self, cell_id: str, *, retry_failed: bool = False) -> bool:
        """Whether ``cell_id`` needs no computation: an ok or not-attackable record, or a failed one
        unless ``retry_failed``."""
        status = self.status(cell_id)
        return status in (STATUS_OK, STATUS_NOT_ATTACKABLE) or (status == STATUS_FAILED and not retry_failed)

    def put(self, config: CellConfig, metrics: Mapping[str, Any], *, base_fingerprint: str | None = None,
            inputs: Mapping[str, Any] | None = None, control: CellConfig | None = None) -> CellRecord:
        """Record a completed cell with its ``metrics`` (numbers, lists, dicts of numbers) and the
        fingerprint of the base model's weights it was computed from. ``control`` is the cell's
        control when it is not :attr:`CellConfig.control` (a searched cell's follows the
        configuration its search chose)."""
        return self._put(config, STATUS_OK, None, plain(dict(metrics)), base_fingerprint, inputs, control)

    def put_failed(self, config: CellConfig, reason: str, *, inputs: Mapping[str, Any] | None = None) -> CellRecord:
        """Record a cell whose computation failed, with the ``reason`` (e.g. the exception text)."""
        return self._put(config, STATUS_FAILED, str(reason), {}, None, inputs)

    def put_not_attackable(self, config: CellConfig, reason: str, metrics: Mapping[str, Any], *,
                           base_fingerprint: str | None = None, inputs: Mapping[str, Any] | None = None
                           ) -> CellRecord:
        """Record a cell that cannot be attacked adaptively (its penalty has no gradient with respect
        to the weights), with the ``reason`` and what was measured."""
        return self._put(config, STATUS_NOT_ATTACKABLE, str(reason), plain(dict(metrics)), base_fingerprint, inputs)

    def _put(
        self, config: CellConfig, status: str, reason: str | None, metrics: dict[str, Any],
        base_fingerprint: str | None = None, inputs: Mapping[str, Any] | None = None,
        control: CellConfig | None = None,
    ) -> CellRecord:
        if not isinstance(config, CellConfig):
            raise ConfigError(f"the store records CellConfig objects, got {type(config).__name__}")
        if control is None and not config.is_control and config.search is None:
            control = config.control
        record = CellRecord(cell_id=config.cell_id, label=config.label, config=config.to_dict(), status=status,
                            reason=reason, metrics=metrics, base_fingerprint=base_fingerprint, created=_now(),
                            version=config.version, inputs=None if inputs is None else dict(inputs),
                            control_cell=None if control is None else control.cell_id)
        self.write(record)
        return record

    def write(self, record: CellRecord | ScoreRecord) -> None:
        """Write a record as it is (atomically), e.g. one copied from another store."""
        if isinstance(record, CellRecord):
            atomic_write_json(self.cell_path(record.cell_id), record.to_dict())
        else:
            path = self.score_path(record.cell_id, record.interpreter, record.interpreter_params)
            atomic_write_json(path, record.to_dict())

    def records(self, **filters: Any) -> Iterator[CellRecord]:
        """All readable cell records, sorted by cell id, optionally filtered.

        Filters match record fields (``status``, ``version``, ``label``, ``cell_id``) or config
        fields (``track``, ``model``, ``attack``, ``interpreter``, ``seed``, ...); enums are accepted.
        Corrupt or partial files are skipped with a :class:`StoreWarning`.
        """
        valid = set(_META_COLUMNS) | set(CellConfig.__dataclass_fields__)
        unknown = sorted(set(filters) - valid)
        if unknown:
            raise ConfigError(f"unknown record filter(s) {unknown}; valid: {sorted(valid)}")
        wanted = {k: _filter_value(v) for k, v in filters.items()}
        for path in sorted((self.root / "cells").glob("*.json")):
            record = _read_record(path, CellRecord)
            if record is None:
                continue
            fields = {**record.config, **{k: record.get(k) for k in _META_COLUMNS}}
            if all(fields.get(k) == v for k, v in wanted.items()):
                yield record

    def to_dataframe(self, **filters: Any) -> pd.DataFrame:
        """One row per cell record: meta columns, config fields (``params.lr``, ...), then metrics.

        Nested metrics are flattened with dots (``{"fsr": {"gradcam": 1.0}}`` -> ``fsr.gradcam``); a
        metric whose name collides with a config or meta column gets the prefix ``metrics.``.
        """
        import pandas as pd

        rows = []
        for record in self.records(**filters):
            row: dict[str, Any] = {k: record.get(k) for k in _META_COLUMNS}
            config = dict(record.config)
            config.pop("version", None)
            _flatten("", config, row)
            _add_metrics(row, record)
            rows.append(row)
        return pd.DataFrame(rows)

    # ---- transfer / adaptive scores

    def score_path(self, cell_id: str, interpreter: str, interpreter_params: Any = ()) -> Path:
        key = interpreter_key(interpreter, interpreter_params)
        return self.root / "scores" / _checked_id(cell_id) / f"{key}.json"

    def get_score(self, cell_id: str, interpreter: str, interpreter_params: Any = ()) -> ScoreRecord | None:
        """The score record of ``interpreter`` on manipulated cell ``cell_id``, or None."""
        return _read_record(self.score_path(cell_id, interpreter, interpreter_params), ScoreRecord)

    def has_score(self, cell_id: str, interpreter: str, interpreter_params: Any = (), *,
                  retry_failed: bool = False) -> bool:
        """Like :meth:`has`, for one (cell, scored interpreter) pair."""
        record = self.get_score(cell_id, interpreter, interpreter_params)
        status = None if record is None else record.status
        return status == STATUS_OK or (status == STATUS_FAILED and not retry_failed)

    def put_score(self, cell_id: str, interpreter: str, metrics: Mapping[str, Any], *,
                  interpreter_params: Any = (), inputs: Mapping[str, Any] | None = None) -> ScoreRecord:
        """Record the scores of ``interpreter`` on cell ``cell_id``; touches no other file."""
        metrics = plain(dict(metrics))
        return self._put_score(cell_id, interpreter, interpreter_params, STATUS_OK, None, metrics, inputs)

    def put_score_failed(self, cell_id: str, interpreter: str, reason: str, *,
                         interpreter_params: Any = (), inputs: Mapping[str, Any] | None = None) -> ScoreRecord:
        """Record that scoring ``interpreter`` on cell ``cell_id`` failed, with the ``reason``."""
        return self._put_score(cell_id, interpreter, interpreter_params, STATUS_FAILED, str(reason), {}, inputs)

    def _put_score(self, cell_id: str, interpreter: str, interpreter_params: Any, status: str,
                   reason: str | None, metrics: dict[str, Any], inputs: Mapping[str, Any] | None = None
                   ) -> ScoreRecord:
        params = normalize_interpreter_params(interpreter_params)
        cell = self.get(cell_id)
        record = ScoreRecord(cell_id=cell_id, interpreter=interpreter, interpreter_params=dict(params),
                             status=status, reason=reason, metrics=metrics, created=_now(),
                             version=cell.version if cell else BENCHMARK_VERSION,
                             inputs=None if inputs is None else dict(inputs))
        self.write(record)
        return record

    def drop_scores(self, cell_id: str) -> int:
        """Delete the score records of ``cell_id`` (its manipulated model is being recomputed);
        returns how many were removed."""
        removed = 0
        for path in (self.root / "scores" / _checked_id(cell_id)).glob("*.json"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    def scores(self, cell_id: str | None = None) -> Iterator[ScoreRecord]:
        """All readable score records (of one cell when ``cell_id`` is given), corrupt files skipped."""
        base = self.root / "scores"
        pattern = f"{_checked_id(cell_id)}/*.json" if cell_id else "*/*.json"
        for path in sorted(base.glob(pattern)):
            record = _read_record(path, ScoreRecord)
            if record is not None:
                yield record

    def scores_dataframe(self) -> pd.DataFrame:
        """One row per score record, with the manipulated cell's config columns joined in."""
        import pandas as pd

        cells = {r.cell_id: r for r in self.records()}
        rows = []
        for record in self.scores():
            row: dict[str, Any] = {"cell_id": record.cell_id, "scored_interpreter": record.interpreter,
                                   "status": record.status, "reason": record.reason}
            cell = cells.get(record.cell_id)
            if cell is not None:
                config = dict(cell.config)
                config["attacking_interpreter"] = config.pop("interpreter")
                _flatten("", {k: v for k, v in config.items() if k != "interpreter_params"}, row)
            _add_metrics(row, record)
            rows.append(row)
        return pd.DataFrame(rows)

    # ---- artefacts

    def weights_path(self, cell_id: str) -> Path:
        """Path of the manipulated weights of ``cell_id``: ``<root>/weights/<cell_id>.pt`` (folder made)."""
        path = self.root / "weights" / f"{_checked_id(cell_id)}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def artifact_path(self, cell_id: str, name: str) -> Path:
        """A path for a per-cell file ``name``: ``<root>/artifacts/<cell_id>/<name>`` (folder created)."""
        if not name or name in (".", "..") or "/" in name or "\\" in name:
            raise ConfigError(f"artifact name {name!r} must be a plain file name (no folders)")
        path = self.root / "artifacts" / _checked_id(cell_id) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def _checked_id(cell_id: str) -> str:
    if not isinstance(cell_id, str) or not re.fullmatch(r"[0-9a-f]{1,64}", cell_id):
        raise ConfigError(f"{cell_id!r} is not a cell id; use CellConfig.cell_id (hex digits)")
    return cell_id

