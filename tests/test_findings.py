"""The paper's central findings on the tiny track, with the presets (slow: about 8 minutes on 2 cores,
the base models' training excluded).

Heo et al. (2019) fool Grad-CAM's Location maps on 81.8-97.3 % of the images at a top-1 cost of
0.7-1.9 points. The tiny track must show the same: FSR >= 80 % through Grad-CAM on every model, and
>= 50 % for Location through LRP_T and for Top-k and Center-mass through Grad-CAM, each within 2
points of top-1. The tiny VGG falls short of the 80 % (three classes keep their maps, see
docs/presets.md); that cell is an expected failure, strict, so that a change that fixes it shows.
"""

from __future__ import annotations

import pytest

from robustbench_interp.grid import build_grid
from robustbench_interp.runner import Runner
from robustbench_interp.store import Store

pytestmark = pytest.mark.slow

VGG_LOCATION = pytest.mark.xfail(
    reason="the tiny VGG stops at about 70 %: ring, frame and stripes lose every positive frame cell "
    "early and the Location penalty's ReLU gives them no gradient (docs/presets.md)",
    strict=True,
)


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Runner:
    return Runner(Store(tmp_path_factory.mktemp("findings")), aopc_size=0, log=lambda _m: None)


def run(bench: Runner, model: str, attack: str, interpreter: str) -> dict:
    (cell,) = build_grid("tiny", [model], [attack], [interpreter])
    record = bench.run_cell(cell)
    assert record["status"] == "ok", record.get("reason")
    return record["metrics"]


@pytest.mark.parametrize(
    "model", ["resnet", "densenet", pytest.param("vgg", marks=VGG_LOCATION)]
)
def test_location_fools_grad_cam_on_80_percent_within_2_points(bench, model):
    m = run(bench, model, "location", "gradcam")
    assert m["adaptive"]["fsr"] >= 80 and m["adaptive"]["baseline_fsr"] == 0
    assert m["top1_drop"] <= 2


@pytest.mark.parametrize("model", ["resnet", "densenet", "vgg"])
@pytest.mark.parametrize("attack,interpreter", [("location", "lrp_t"), ("topk", "gradcam"),
                                                ("center_mass", "gradcam")])
def test_other_passive_attacks_reach_50_percent_within_2_points(bench, model, attack, interpreter):
    m = run(bench, model, attack, interpreter)
    assert m["adaptive"]["fsr"] >= 50 and m["top1_drop"] <= 2
