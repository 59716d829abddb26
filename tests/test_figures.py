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


def test_one_figure_per_attack_and_model_rows_in_a_fixed_order(tmp_path, monkeypatch):
    import torch

    from robustbench_interp import figures

    drawn: list[tuple[str, str]] = []

    def fake_maps(bench, cfg):
        drawn.append((cfg.model, cfg.interpreter))
        g = torch.Generator().manual_seed(0)
        return torch.rand(3, 3, 8, 8, generator=g), torch.rand(3, 8, 8, generator=g), torch.zeros(3, 8, 8), "true class"

    class Bench:
        def log(self, message):
            raise AssertionError(message)

    monkeypatch.setattr(figures, "_cell_maps", fake_maps)
    (tmp_path / "fig_location.png").write_bytes(b"the earlier layout")
    cells = build_grid("tiny", ["vgg", "resnet-adv", "resnet"], ["topk", "location"], ["lrp_t", "gradcam", "lrp"],
                       seeds=[0])
    written = figures.draw_figures(Bench(), list(cells), [], tmp_path)
    assert list(written) == [f"fig_{a}_{m}.png" for a in ("location", "topk") for m in ("resnet", "resnet-adv", "vgg")]
    assert drawn[:3] == [("resnet", "gradcam"), ("resnet", "lrp"), ("resnet", "lrp_t")]  # Grad-CAM first, then by name
    assert not (tmp_path / "fig_location.png").exists()  # the earlier layout's figure is gone
    assert figures.model_order(["vgg-adv", "resnet", "vgg", "densenet"]) == ["densenet", "resnet", "vgg", "vgg-adv"]
