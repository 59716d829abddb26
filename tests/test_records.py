"""The store's two records: one schema each, checked on read, a JSON round trip, a mapping view."""

from __future__ import annotations

import json

import pytest

from robustbench_interp.errors import ConfigError
from robustbench_interp.grid import build_grid
from robustbench_interp.records import CellRecord, ScoreRecord
from robustbench_interp.store import Store, StoreWarning

(CELL,) = build_grid("tiny", ["vgg"], ["topk"], ["gradcam"])


def test_the_store_writes_and_reads_typed_records_that_round_trip_through_json(tmp_path):
    store = Store(tmp_path)
    written = store.put(CELL, {"top1_drop": 0.5}, base_fingerprint="ab")
    score = store.put_score(CELL.cell_id, "lrp_t", {"fsr": 12.5})
    assert isinstance(written, CellRecord) and isinstance(score, ScoreRecord)
    assert store.get(CELL.cell_id) == written and written.ok and written.config["attack_params"] == {"k": 0.1}
    assert store.get_score(CELL.cell_id, "lrp_t") == score and score.version == written.version
    assert CellRecord.from_dict(json.loads(json.dumps(written.to_dict()))) == written
    assert written["metrics"] == written.metrics == {"top1_drop": 0.5}  # the mapping view
    assert set(written) == {"cell_id", "status", "config", "label", "reason", "metrics", "base_fingerprint",
                            "created", "version", "provenance", "inputs", "control_cell"}


@pytest.mark.parametrize("data,match", [
    ({"status": "ok", "config": {}}, "missing \\['cell_id'\\]"),
    ({"cell_id": "ab", "status": "done", "config": {}}, "status must be"),
    ({"cell_id": "ab", "status": "ok", "config": "tiny"}, "config must be"),
    (["cell_id"], "JSON object"),
])
def test_a_record_that_breaks_the_schema_is_refused_naming_the_problem(data, match):
    with pytest.raises(ConfigError, match=match):
        CellRecord.from_dict(data)


def test_the_store_skips_a_record_that_breaks_the_schema_with_a_warning(tmp_path):
    store = Store(tmp_path)
    store.put(CELL, {})
    path = store.cell_path(CELL.cell_id)
    path.write_text(json.dumps({**json.loads(path.read_text()), "metrics": "90 %"}))
    with pytest.warns(StoreWarning, match="metrics must be"):
        assert store.get(CELL.cell_id) is None
    with pytest.warns(StoreWarning):
        assert list(store.records()) == []


def test_a_record_with_an_unknown_field_is_refused():
    with pytest.raises(ConfigError, match="unknown field.*metrcs"):
        CellRecord.from_dict({"cell_id": "ab", "status": "ok", "config": {}, "metrcs": {}})
