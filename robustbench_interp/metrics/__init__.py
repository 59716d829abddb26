"""Pure functions on heatmaps and models: test losses, FSR, similarity, accuracy, AOPC (SPEC section 4)."""

from robustbench_interp.metrics.accuracy import evaluate_accuracy, topk_correct
from robustbench_interp.metrics.aopc import aopc_curve
from robustbench_interp.metrics.fsr import (
    SUCCESS_INTERVALS,
    fooling_success_rate,
    fsr_by_class,
    fsr_confidence_interval,
    fsr_summary,
    success_interval,
)
from robustbench_interp.metrics.heatmaps import center_of_mass, location_mask, normalize, topk_mask
from robustbench_interp.metrics.similarity import spearman, topk_intersection
from robustbench_interp.metrics.test_losses import (
    active_test_loss,
    baseline_active_test_loss,
    baseline_passive_test_loss,
    center_mass_test_loss,
    location_test_loss,
    passive_test_loss,
    topk_test_loss,
)

__all__ = [
    "SUCCESS_INTERVALS",
    "active_test_loss",
    "aopc_curve",
    "baseline_active_test_loss",
    "baseline_passive_test_loss",
    "center_mass_test_loss",
    "center_of_mass",
    "evaluate_accuracy",
    "fooling_success_rate",
    "fsr_by_class",
    "fsr_confidence_interval",
    "fsr_summary",
    "location_mask",
    "location_test_loss",
    "normalize",
    "passive_test_loss",
    "spearman",
    "success_interval",
    "topk_correct",
    "topk_intersection",
    "topk_mask",
    "topk_test_loss",
]
