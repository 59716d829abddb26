"""Pure functions on heatmaps and models: FSR, scores, similarity, accuracy, AOPC (SPEC section 4).

The test losses of the attacks live with the attacks (:mod:`robustbench_interp.attacks`), one file each.
"""

from robustbench_interp.metrics.accuracy import evaluate_accuracy, topk_correct
from robustbench_interp.metrics.aopc import aopc_curve
from robustbench_interp.metrics.fsr import (
    fooling_success_rate,
    fsr_by_class,
    fsr_confidence_interval,
    fsr_summary,
    successes,
)
from robustbench_interp.metrics.heatmaps import center_of_mass, location_mask, normalize, topk_mask
from robustbench_interp.metrics.scoring import score_maps, similarity
from robustbench_interp.metrics.similarity import spearman, topk_intersection

__all__ = [
    "aopc_curve",
    "center_of_mass",
    "evaluate_accuracy",
    "fooling_success_rate",
    "fsr_by_class",
    "fsr_confidence_interval",
    "fsr_summary",
    "location_mask",
    "normalize",
    "score_maps",
    "similarity",
    "spearman",
    "successes",
    "topk_correct",
    "topk_intersection",
    "topk_mask",
]
