"""Findings of the tiny track under the honest-scoring rules, as assertions (slow: about 4 minutes on
2 cores; seed 0 of three Grad-CAM cells on the published tiny ResNet, each with its hand-set preset:
the configuration every search of the committed leaderboard starts from, whose test FSR
leaderboard/tiny/search.md lists as "preset test FSR").

- Location through Grad-CAM fools the ResNet's maps far above its baseline and control (both 0 %)
  within 2 points of top-1 (detail.md, resnet / location / gradcam: the search kept the preset).
- Active's preset through Grad-CAM fools class c1 and not class c2: the per-class FSRs show what the
  mean hides (the search found a configuration that swaps both on seed 0, but not on seeds 1 and 2:
  detail.md, resnet / active / gradcam, c1 and c2).
- Top-k's preset through Grad-CAM empties many of the ResNet's maps; an empty map is never a
  success, so the FSR counts only the maps that still show something (detail.md, resnet / topk /
  gradcam, empty_rate, lower with the search's softplus surrogate).
"""

from __future__ import annotations

import pytest

from robustbench_interp.grid import build_grid
from robustbench_interp.runner import Runner
from robustbench_interp.store import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Runner:
    return Runner(Store(tmp_path_factory.mktemp("findings")), aopc_size=0, log=lambda _m: None)


def run(bench: Runner, model: str, attack: str, interpreter: str) -> dict:
    (cell,) = build_grid("tiny", [model], [attack], [interpreter])
    record = bench.run_cell(cell)
    assert record["status"] == "ok", record.get("reason")
    return record["metrics"]


def test_location_fools_grad_cam_on_the_resnet_within_2_points(bench):
    m = run(bench, "resnet", "location", "gradcam")
    assert m["adaptive"]["fsr"] >= 60 and m["adaptive"]["baseline_fsr"] == 0
    assert m["top1_drop"] <= 2


def test_active_fools_one_class_of_the_pair_only(bench):
    m = run(bench, "resnet", "active", "gradcam")["adaptive"]
    assert m["c1"]["fsr"] >= 90 and m["c2"]["fsr"] <= 10


def test_topk_empties_maps_and_empty_maps_are_not_successes(bench):
    m = run(bench, "resnet", "topk", "gradcam")["adaptive"]
    assert m["empty_rate"] >= 20 and m["baseline_empty_rate"] < 5
    assert m["fsr"] <= 100 - m["empty_rate"]
