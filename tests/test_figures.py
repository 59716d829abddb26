"""The figures draw one row per attacked cell: controls and further seeds are left out."""

from __future__ import annotations

from robustbench_interp.figures import first_seeds
from robustbench_interp.grid import build_grid, with_controls


def test_figures_keep_the_lowest_seed_of_each_attacked_cell_and_no_control():
    cells = with_controls(build_grid("tiny", ["vgg", "resnet"], ["location"], ["gradcam", "lrp_t"],
                                     seeds=[2, 0, 1]))
    kept = first_seeds(list(cells))
    assert sorted((c.model, c.interpreter) for c in kept) == [("resnet", "gradcam"), ("resnet", "lrp_t"),
                                                            ("vgg", "gradcam"), ("vgg", "lrp_t")]
    assert {c.seed for c in kept} == {0} and not any(c.is_control for c in kept)
