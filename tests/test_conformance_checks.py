"""Conformance checks that the suite's plug-in tests do not reach: the spatial-variation check and
the batch-independence check's float64 re-check."""

from __future__ import annotations

import pytest
import torch

from robustbench_interp import get_interpreter
from robustbench_interp.conformance import ConformanceError, check_batch_independence, check_spatial_variation
from robustbench_interp.interpreters.base import Interpreter
from robustbench_interp.models import tiny
from robustbench_interp.models.base import LoadedModel


def loaded(arch: str) -> LoadedModel:
    torch.manual_seed(0)
    model = tiny.build(arch).eval()
    return LoadedModel(track="tiny", name=arch, model=model,
                       target_layer=model.get_submodule(model.target_layer_name), num_classes=10,
                       input_size=(64, 64))


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 3, 64, 64, generator=g), torch.tensor([0, 1, 2, 3])


class Flat(Interpreter):
    """One value per image: the class score, spread over the input grid."""

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        score = model(x).gather(1, target[:, None])  # [B, 1]
        return score[:, :, None].expand(-1, x.shape[-2], x.shape[-1])


class OneZeroMap(Interpreter):
    """Simple gradient, except that the first image's map is all zero (as Grad-CAM's can be)."""

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        h = get_interpreter("simplegrad").explain(model, x, target, create_graph=create_graph)
        return torch.cat([torch.zeros_like(h[:1]), h[1:]])


def test_a_constant_map_fails_with_the_reason(batch):
    with pytest.raises(ConformanceError, match="constant over positions"):
        check_spatial_variation(Flat(), loaded("vgg"), *batch)


def test_one_constant_map_in_the_batch_is_allowed(batch):
    check_spatial_variation(OneZeroMap(), loaded("vgg"), *batch)


@pytest.mark.parametrize("name", ["gradcam", "simplegrad", "lrp_t", "simplegrad_t"])
def test_built_ins_vary_on_the_vgg(name, batch):
    check_spatial_variation(get_interpreter(name), loaded("vgg"), *batch)


def test_simplegrad_t_is_constant_where_the_target_layer_feeds_only_a_pool_and_a_linear_head(batch):
    """The output of the ResNet's last block (not the benchmark's target layer, the block's input):
    only global pooling and a linear head follow it, so its gradient is the same at every position."""
    torch.manual_seed(0)
    model = tiny.build("resnet").eval()
    last = LoadedModel(track="tiny", name="resnet", model=model, target_layer=model.get_submodule("layer3.1"),
                       num_classes=10, input_size=(64, 64))
    with pytest.raises(ConformanceError, match="global-average pooling"):
        check_spatial_variation(get_interpreter("simplegrad_t"), last, *batch)
    check_spatial_variation(get_interpreter("simplegrad_t"), loaded("resnet"), *batch)  # the input of the block


class RoundsWithTheBatch(Interpreter):
    """Simple gradient plus a float32-sized error that depends on the batch size (what a convolution
    that rounds differently per batch size, magnified by a division, looks like); none in float64."""

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        h = get_interpreter("simplegrad").explain(model, x, target, create_graph=create_graph)
        wobble = 1e-3 * h.amax() * (len(x) > 1) * (h.dtype == torch.float32)
        return h + wobble * torch.rand(h.shape, generator=torch.Generator().manual_seed(len(x)))


class NormalisedOverTheBatch(Interpreter):
    """Simple gradient divided by the batch's largest value: batch-dependent in any precision."""

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        h = get_interpreter("simplegrad").explain(model, x, target, create_graph=create_graph)
        return h / h.amax()


class Float32Only(RoundsWithTheBatch):
    """The same rounding, from a method that cannot run in float64."""

    def explain(self, model, x, target, *, layer=None, create_graph=False):
        if x.dtype != torch.float32:
            raise TypeError("expected float32")
        return super().explain(model, x, target, layer=layer, create_graph=create_graph)


def test_batch_independence_tells_rounding_from_a_batch_dependent_map(batch):
    """A float32 mismatch that vanishes in float64 is rounding and passes; a map normalised over
    the batch fails in float64 too; a method that cannot run in float64 is judged in float32."""
    check_batch_independence(RoundsWithTheBatch(), loaded("vgg"), *batch)
    with pytest.raises(ConformanceError, match="changes when other images share its batch"):
        check_batch_independence(NormalisedOverTheBatch(), loaded("vgg"), *batch)
    with pytest.raises(ConformanceError, match="changes when other images share its batch"):
        check_batch_independence(Float32Only(), loaded("vgg"), *batch)


def test_lrp_is_batch_independent_on_the_published_densenet(batch):
    """On the trained DenseNet, LRP's maps of one image alone and in a batch differ by about 2e-4 of
    their largest value in float32 (the division by small pre-activations magnifies the
    convolution's batch-size rounding); in float64 they agree, so the built-in passes."""
    from robustbench_interp import load_model

    check_batch_independence(get_interpreter("lrp"), load_model("tiny", "densenet"), *batch)
