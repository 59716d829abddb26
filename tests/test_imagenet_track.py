"""The imagenet track without ImageNet: random-weight torchvision models and small fake folders."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from robustbench_interp.data import get_composites, get_dataset
from robustbench_interp.data.imagenet import imagenet_composites, imagenet_split
from robustbench_interp.errors import ConfigError, MissingResourceError
from robustbench_interp.models import Normalize, load_model
from robustbench_interp.models.cache import save_state_dict
from robustbench_interp.models.imagenet import _fix_densenet_keys, hub_checkpoint

# At 224x224 the grids are 14x14 (VGG19) and 7x7 (ResNet50, DenseNet121): strides 16 and 32.
STRIDES = {"vgg19": 16, "resnet50": 32, "densenet121": 32}
ELEPHANT, FIRE_TRUCK, TENCH, GOLDFISH = "n02504458", "n03345487", "n01440764", "n01443537"


@pytest.mark.parametrize("name", sorted(STRIDES))
def test_random_models_have_normalize_first_and_the_paper_target_layer(name):
    loaded = load_model("imagenet", name, weights="random")
    model = loaded.model
    assert isinstance(model[0], Normalize) and loaded.num_classes == 1000 and loaded.input_size == (224, 224)
    assert model.get_submodule(loaded.target_layer_name) is loaded.target_layer
    assert not any(getattr(m, "inplace", False) for m in model.modules())
    out = {}
    loaded.target_layer.register_forward_hook(lambda m, i, o: out.update(grid=o.shape[-2:]))
    size = 64  # small input for speed; 224 gives 224 / stride
    with torch.no_grad():
        assert model(torch.rand(1, 3, size, size)).shape == (1, 1000)
    assert tuple(out["grid"]) == (size // STRIDES[name],) * 2


def test_missing_hub_weights_name_the_expected_path(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    expected = hub_checkpoint("resnet50")
    assert expected.parent == tmp_path / "hub" / "checkpoints" and expected.name.endswith(".pth")
    with pytest.raises(MissingResourceError, match=str(expected)) as info:
        load_model("imagenet", "resnet50")
    assert "weights=" in str(info.value)


def test_hub_weights_and_local_weights_files_load(tmp_path, monkeypatch):
    source = load_model("imagenet", "resnet50", weights="random").model
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    save_state_dict(hub_checkpoint("resnet50"), source.net.state_dict())  # as torchvision stores it
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        reference = source(x)
        torch.testing.assert_close(load_model("imagenet", "resnet50").model(x), reference)
        wrapped = tmp_path / "wrapped.pt"  # a state dict of the whole wrapper works too
        save_state_dict(wrapped, source.state_dict())
        torch.testing.assert_close(load_model("imagenet", "resnet50", weights=wrapped).model(x), reference)
    with pytest.raises(MissingResourceError, match="absent.pth"):
        load_model("imagenet", "resnet50", weights=tmp_path / "absent.pth")
    with pytest.raises(ConfigError, match="weights="):
        load_model("imagenet", "resnet50-adv")


def test_legacy_densenet_keys_are_renamed():
    legacy = {"features.denseblock1.denselayer1.norm.1.weight": 1, "features.norm5.weight": 2,
              "features.denseblock4.denselayer16.conv.2.weight": 3}  # fmt: skip
    assert _fix_densenet_keys(legacy) == {
        "features.denseblock1.denselayer1.norm1.weight": 1,
        "features.norm5.weight": 2,
        "features.denseblock4.denselayer16.conv2.weight": 3,
    }


def _fake_folder(root, classes, per_class, ext=".JPEG", size=(40, 30)):
    for k, wnid in enumerate(classes):
        (root / wnid).mkdir(parents=True)
        for i in range(per_class):
            colour = (20 * k + 5 * i, 255 - 30 * k, 60 + 10 * i)
            Image.new("RGB", size, colour).save(root / wnid / f"{wnid}_{i}{ext}")


def test_class_folder_layout(tmp_path, monkeypatch):
    _fake_folder(tmp_path / "val", [TENCH, ELEPHANT], 2, ".png")
    (tmp_path / "val" / "empty").mkdir()
    ds = get_dataset("imagenet", "val", root=tmp_path)
    assert len(ds) == 4 and ds.classes == [TENCH, ELEPHANT]  # sorted folder names -> indices
    x, y = ds[0]
    assert x.shape == (3, 224, 224) and 0 <= x.min() and x.max() <= 1 and y == 0
    monkeypatch.setenv("RBI_IMAGENET_ROOT", str(tmp_path / "val"))  # a root that is the class folder
    assert len(imagenet_split("val")) == 4


def test_torchvision_imagenet_layout(tmp_path):
    _fake_folder(tmp_path / "val", [TENCH, GOLDFISH], 1)
    torch.save(({TENCH: ("tench",), GOLDFISH: ("goldfish",)}, [TENCH, GOLDFISH]), tmp_path / "meta.bin")
    ds = get_dataset("imagenet", "val", root=tmp_path)
    assert type(ds).__name__ == "ImageNet" and ds.classes == [("tench",), ("goldfish",)]
    assert ds[1][0].shape == (3, 224, 224)


def test_missing_imagenet_says_how_to_provide_it(tmp_path, monkeypatch):
    monkeypatch.delenv("RBI_IMAGENET_ROOT", raising=False)
    with pytest.raises(MissingResourceError, match="RBI_IMAGENET_ROOT"):
        get_dataset("imagenet", "val")
    with pytest.raises(MissingResourceError, match="nowhere"):
        get_dataset("imagenet", "val", root=tmp_path / "nowhere")
    (tmp_path / "val").mkdir()
    with pytest.raises(MissingResourceError, match="no class folders"):
        get_dataset("imagenet", "val", root=tmp_path)
    with pytest.raises(ConfigError, match="test labels"):
        get_dataset("imagenet", "test", root=tmp_path)


def _quadrant(image, q):
    return image[:, (q // 2) * 112 : (q // 2 + 1) * 112, (q % 2) * 112 : (q % 2 + 1) * 112]


def test_composites_from_train_and_val_folders(tmp_path):
    for split, n in (("train", 3), ("val", 2)):
        _fake_folder(tmp_path / split, [ELEPHANT, FIRE_TRUCK, TENCH, GOLDFISH], n)
    comp = get_composites("imagenet", part="train", root=tmp_path)  # defaults: 386 / 555
    assert len(comp) == 3 and (comp.c1, comp.c2) == (386, 555)
    seen_quadrants = set()
    for i in range(len(comp)):
        image, m1, m2 = comp[i]
        assert image.shape == (3, 224, 224) and m1.shape == m2.shape == (224, 224)
        assert m1.sum() == m2.sum() == 112 * 112 and not (m1 & m2).any()
        files = comp.files[i]
        assert sum(ELEPHANT in p.name for p in files) == 1 and sum(FIRE_TRUCK in p.name for p in files) == 1
        q1 = next(q for q, p in enumerate(files) if ELEPHANT in p.name)
        assert m1[(q1 // 2) * 112, (q1 % 2) * 112]
        # the quadrant shows the elephant image (a flat colour here)
        expected = comp.transform(Image.open(files[q1]).convert("RGB"))
        torch.testing.assert_close(_quadrant(image, q1), expected)
        seen_quadrants.add(q1)
        assert all(p.parent.parent.name == "train" for p in files)
    heldout = imagenet_composites(386, 555, "heldout", tmp_path)
    assert len(heldout) == 2 and all(p.parent.parent.name == "val" for row in heldout.files for p in row)


def test_composites_from_one_class_folder_keep_parts_apart(tmp_path):
    _fake_folder(tmp_path, [ELEPHANT, FIRE_TRUCK, TENCH], 4)
    train = imagenet_composites(ELEPHANT, FIRE_TRUCK, "train", tmp_path)
    heldout = imagenet_composites(ELEPHANT, FIRE_TRUCK, "heldout", tmp_path)
    used = [{p for row in part.files for p in row if TENCH not in p.name} for part in (train, heldout)]
    assert len(train) == len(heldout) == 2 and not used[0] & used[1]
    with pytest.raises(MissingResourceError, match="pass the class as its folder name"):
        imagenet_composites(100, 555, "train", tmp_path)
    with pytest.raises(ConfigError, match="differ"):
        imagenet_composites(ELEPHANT, ELEPHANT, "train", tmp_path)
