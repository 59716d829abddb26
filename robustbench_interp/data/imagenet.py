"""The ``imagenet`` track's data, read from a local folder (nothing is downloaded).

Two layouts are understood, under a root given as ``root=`` (CLI ``--data-root``) or by the
environment variable ``RBI_IMAGENET_ROOT``:

- torchvision's ``ImageNet`` layout: ``<root>/meta.bin`` and ``<root>/{train,val}/<wnid>/*.JPEG``
  (read with :class:`torchvision.datasets.ImageNet`; labels are the standard ImageNet indices);
- a class-folder layout: ``<root>/{train,val}/<class>/*`` or ``<root>/<class>/*`` with ``.JPEG``,
  ``.jpg`` or ``.png`` files. As in :class:`torchvision.datasets.ImageFolder`, the labels are the
  indices of the sorted folder names, which are the standard ImageNet indices when the folders are
  the 1000 wnids.

Images are resized to 256 (shorter side) and centre-cropped to 224, as tensors in [0, 1]; the
models normalise inside.

Active-fooling composites (African elephant 386 / fire truck 555 by default) are 224x224 2x2 grids of
112x112 images: one of ``c1`` and one of ``c2`` in random quadrants, the two other quadrants from
other classes. The "train" part is built from ``<root>/train`` and the "heldout" part from
``<root>/val``; with a single class-folder root, the images of each class are split in two
(even / odd positions in sorted order) so that the parts never share an image.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from robustbench_interp.data.composites import check_part, quadrant_layout
from robustbench_interp.errors import ConfigError, MissingResourceError

ENV_ROOT = "RBI_IMAGENET_ROOT"
IMAGE_SIZE = 224
RESIZE = 256
NUM_CLASSES = 1000
EXTENSIONS = (".jpeg", ".jpg", ".png")
#: wnids of the classes the benchmark uses by default, so that they are found in a partial folder.
KNOWN_WNIDS = {386: "n02504458", 555: "n03345487"}
PARTS_OFFSET = {"train": 0, "heldout": 1}


def resolve_root(root: str | os.PathLike | None) -> Path:
    """The ImageNet root: ``root`` if given, else ``$RBI_IMAGENET_ROOT``; it must exist."""
    if root is None:
        root = os.environ.get(ENV_ROOT)
        if not root:
            raise MissingResourceError(
                "the imagenet track needs a local copy of ImageNet; pass root=<folder> "
                f"(CLI: --data-root <folder>) or set the environment variable {ENV_ROOT}. The folder "
                "holds val/<wnid>/*.JPEG (and meta.bin), or one sub-folder of images per class."
            )
    path = Path(root).expanduser()
    if not path.is_dir():
        raise MissingResourceError(
            f"ImageNet folder {str(path)!r} does not exist; pass an existing folder as root= / "
            f"--data-root or set {ENV_ROOT}."
        )
    return path


def eval_transform(size: int = IMAGE_SIZE, resize: int = RESIZE):
    """Resize the shorter side to ``resize``, centre-crop ``size``, to a float tensor in [0, 1]."""
    from torchvision import transforms

    return transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(size), transforms.ToTensor()])


def _split_folder(root: Path, split: str) -> Path:
    sub = root / split
    return sub if sub.is_dir() else root


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in EXTENSIONS


def _class_folders(folder: Path) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and any(map(_is_image, p.iterdir())))
    if not classes:
        raise MissingResourceError(
            f"no class folders with images ({', '.join(EXTENSIONS)}) under {str(folder)!r}; expected "
            "<root>/val/<wnid>/*.JPEG or <root>/<class>/*.jpg."
        )
    return classes


def imagenet_split(split: str, root: str | os.PathLike | None = None) -> Dataset:
    """The ``split`` ("val" or "train") of a local ImageNet: items ``(image [3,224,224], label)``."""
    from torchvision import datasets

    if split == "test":
        raise ConfigError("ImageNet's test labels are not public; the imagenet track evaluates on 'val'.")
    if split not in ("train", "val"):
        raise ConfigError(f"unknown split {split!r} of the imagenet track; use 'val' (or 'train').")
    base = resolve_root(root)
    transform = eval_transform()
    if (base / "meta.bin").is_file() and (base / split).is_dir():
        return datasets.ImageNet(str(base), split=split, transform=transform)
    folder = _split_folder(base, split)
    _class_folders(folder)  # a clear error when the folder holds no class folders

    class ClassFolders(datasets.ImageFolder):
        """ImageFolder that skips folders without images (instead of failing on them)."""

        def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
            classes = _class_folders(Path(directory))
            return classes, {c: i for i, c in enumerate(classes)}

    return ClassFolders(str(folder), transform=transform, is_valid_file=lambda p: _is_image(Path(p)))


def _wnid_of(c: int | str, folder: Path, classes: Sequence[str], base: Path) -> str:
    if isinstance(c, str):
        if c in classes:
            return c
        raise MissingResourceError(f"class folder {c!r} not found under {str(folder)!r}.")
    if (base / "meta.bin").is_file():
        from torchvision.datasets.imagenet import load_meta_file

        wnids = sorted(load_meta_file(str(base))[0])
        return wnids[c]
    if len(classes) == NUM_CLASSES:
        return classes[c]
    if c in KNOWN_WNIDS and KNOWN_WNIDS[c] in classes:
        return KNOWN_WNIDS[c]
    raise MissingResourceError(
        f"cannot find the folder of ImageNet class {c} under {str(folder)!r}: it has {len(classes)} class "
        "folders, not the 1000 wnids, and no meta.bin; pass the class as its folder name (wnid)."
    )


def _images_of(folder: Path, wnid: str) -> list[Path]:
    return sorted(p for p in (folder / wnid).iterdir() if _is_image(p))


class ImageNetComposites(Dataset):
    """Active composites of local ImageNet images, loaded lazily: items
    ``(image [3,224,224], c1_mask [224,224], c2_mask [224,224])`` where a mask is the whole quadrant
    of its class. ``files`` [N][4] are the quadrant files (row-major), ``c1`` / ``c2`` the classes.
    """

    def __init__(self, files: list[list[Path]], layout: np.ndarray, c1: int | str, c2: int | str) -> None:
        self.files, self.layout = files, layout
        self.c1, self.c2 = c1, c2
        self.transform = eval_transform(IMAGE_SIZE // 2, RESIZE // 2)

    def __len__(self) -> int:
        return len(self.files)

    def _mask(self, row: np.ndarray, which: int) -> Tensor:
        half = IMAGE_SIZE // 2
        mask = torch.zeros(IMAGE_SIZE, IMAGE_SIZE, dtype=torch.bool)
        q = int(np.flatnonzero(row == which)[0])
        mask[(q // 2) * half : (q // 2 + 1) * half, (q % 2) * half : (q % 2 + 1) * half] = True
        return mask

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        from PIL import Image

        quads = [self.transform(Image.open(p).convert("RGB")) for p in self.files[index]]
        image = torch.cat([torch.cat(quads[:2], dim=2), torch.cat(quads[2:], dim=2)], dim=1)
        row = self.layout[index]
        return image, self._mask(row, 0), self._mask(row, 1)


def imagenet_composites(
    c1: int | str,
    c2: int | str,
    part: str,
    root: str | os.PathLike | None = None,
    *,
    n: int | None = None,
    seed: int = 0,
) -> ImageNetComposites:
    """Composites of ImageNet classes ``c1`` and ``c2`` (indices or wnids); ``n`` defaults to as many
    as there are images of the rarer of the two classes (each used once)."""
    check_part(part)
    if part not in PARTS_OFFSET:
        raise ConfigError(f"the imagenet track's composites have the parts {', '.join(PARTS_OFFSET)} (ImageNet "
                          f"has no labelled test split), got {part!r}")
    base = resolve_root(root)
    split = "train" if part == "train" else "val"
    folder = _split_folder(base, split)
    shared = folder == base  # a single class-folder root: split its images between the parts
    classes = _class_folders(folder)
    w1, w2 = _wnid_of(c1, folder, classes, base), _wnid_of(c2, folder, classes, base)
    if w1 == w2:
        raise ConfigError(f"the two Active classes must differ, got {c1!r} and {c2!r}.")

    def pool(wnid: str) -> list[Path]:
        files = _images_of(folder, wnid)
        return files[PARTS_OFFSET[part] :: 2] if shared else files

    pools = {w: pool(w) for w in classes}
    others = [w for w in classes if w not in (w1, w2) and pools[w]]
    if not others:
        raise MissingResourceError(
            f"composites need images of classes other than {w1} and {w2} in {str(folder)!r}."
        )
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[PARTS_OFFSET[part]])
    count = min(len(pools[w1]), len(pools[w2]))
    n = count if n is None else int(n)
    if count == 0 or n > count:
        raise MissingResourceError(
            f"{n if n else 'composites'} need that many images of {w1} and {w2} in {str(folder)!r}; found "
            f"{len(pools[w1])} and {len(pools[w2])}."
        )
    # quadrant codes: 0 = c1, 1 = c2, 2.. = index into `others` + 2
    layout = quadrant_layout(n, 0, 1, 2 + len(others), rng)
    layout = np.where(layout < 0, rng.integers(2, 2 + len(others), size=layout.shape), layout)
    first = rng.permutation(len(pools[w1]))[:n]
    second = rng.permutation(len(pools[w2]))[:n]
    files = []
    for i in range(n):
        row = []
        for code in layout[i]:
            if code == 0:
                row.append(pools[w1][first[i]])
            elif code == 1:
                row.append(pools[w2][second[i]])
            else:
                other = pools[others[code - 2]]
                row.append(other[int(rng.integers(len(other)))])
        files.append(row)
    return ImageNetComposites(files, layout, c1, c2)

