"""Data for the training chapters: an embedded offline dataset, CIFAR-10, ImageNet-style folders.

``embedded(split)`` needs no download and no files: *EmbeddedShapes*, 10 classes of 32x32 RGB
images (20,000 train, 5,000 test by default) drawn procedurally from a seed in a few seconds and
cached in memory. Chapter 9 trains the small networks on it; readers with the network can switch
to ``cifar10(root, download=True)`` or to ``image_folder(root)`` (Imagenette, ImageNet).
``loader(dataset, batch_size, train)`` wraps any of them in a seeded ``DataLoader``.

How an EmbeddedShapes image is made (all of it vectorised with torch, one loop per class):

1. **Shape.** The class fixes a shape, written as a signed distance (positive inside) in the
   shape's own frame ``(u, v)``: 0 disc, 1 ring, 2 square, 3 frame (square outline), 4 triangle,
   5 cross, 6 horizontal bars, 7 vertical bars, 8 diagonal stripes, 9 checkerboard (the four
   stripe and checker classes fill a square patch). Each image draws its own centre (up to 35% of
   the half-width off the middle), scale (0.45 to 0.8 of the half-width), rotation (any angle for
   the shapes; the base angle plus or minus 14 degrees for the bars, so orientation stays the
   class), stroke width, stripe frequency and phase. The distance becomes an antialiased mask.
2. **Colour.** Foreground and background colours are uniform in RGB for every class, so colour
   says nothing about the class; pairs with too little contrast get their foreground moved half
   way round the colour cube. A shape is light on dark as often as dark on light.
3. **Texture.** Each of foreground and background is modulated by its own smooth random texture
   (4x4 noise upsampled bilinearly), and the background carries a random linear gradient.
4. **Clutter.** Three small distractor discs and two short line segments in random colours are
   painted over the image, so the shape is not the only structure.
5. **Noise.** Gaussian pixel noise with a per-image standard deviation of 2% to 8%, then
   quantisation to uint8.

Train and test use different seeds derived from ``seed``, so the splits share no image. Samples
come out as normalised float tensors (``MEAN``/``STD``, measured on the default train split); the
train split adds the CIFAR-style augmentation (random crop with 4 pixels of padding, horizontal
flip) as a function of ``(seed, epoch, index)`` only: ``set_epoch(epoch)`` picks the epoch.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from . import net, prefetch, validate

__all__ = [
    "CLASSES",
    "MEAN",
    "STD",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EmbeddedShapes",
    "embedded",
    "generate",
    "cifar10",
    "image_folder",
    "loader",
    "default_workers",
]

CLASSES = (
    "disc",
    "ring",
    "square",
    "frame",
    "triangle",
    "cross",
    "horizontal bars",
    "vertical bars",
    "diagonal stripes",
    "checkerboard",
)
SIZES = {"train": 20_000, "test": 5_000}
SPLITS = tuple(SIZES)

# Per-channel mean and std in [0, 1] of embedded("train") with seed 0 (tests/test_data.py checks).
MEAN = (0.5022, 0.4990, 0.5013)
STD = (0.2884, 0.2885, 0.2882)

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_PAD = 4  # pixels of padding for the random crop


def _derive_seed(*parts: object) -> int:
    """A 63-bit seed from any tuple of ints and strings (stable across runs and machines)."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


# ---------------------------------------------------------------------------------------------
# EmbeddedShapes: the recipe


def _uniform(g: torch.Generator, n: int, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return torch.rand(n, *shape, generator=g) * (hi - lo) + lo


def _smooth_noise(g: torch.Generator, n: int, channels: int, size: int) -> torch.Tensor:
    """Smooth random texture in [-1, 1]: 4x4 noise upsampled bilinearly to ``size``."""
    coarse = torch.rand(n, channels, 4, 4, generator=g) * 2 - 1
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)


def _stripes(t: torch.Tensor, freq: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
    """Signed distance (approximately, in shape units) to the edges of parallel stripes."""
    return torch.sin(t * math.pi * freq + phase) / (math.pi * freq)


def _shape_distance(label: int, u: torch.Tensor, v: torch.Tensor, g: torch.Generator):
    """Signed distance, positive inside, of class ``label`` in the shape frame (n, H, W)."""
    n = u.shape[0]
    r = torch.sqrt(u * u + v * v)
    box = torch.maximum(u.abs(), v.abs())
    width = _uniform(g, n, 0.15, 0.3, 1, 1)
    freq = _uniform(g, n, 1.6, 2.6, 1, 1)  # stripes per shape unit
    phase = _uniform(g, n, 0.0, 2 * math.pi, 1, 1)
    patch = 1.0 - box
    if label == 0:  # disc
        return 1.0 - r
    if label == 1:  # ring
        return width - (r - 0.75).abs()
    if label == 2:  # square
        return 0.8 - box
    if label == 3:  # frame
        return width - (box - 0.75).abs()
    if label == 4:  # equilateral triangle, circumradius 1
        sides = [
            0.5 - (u * math.cos(a) + v * math.sin(a))
            for a in (math.pi / 2, math.pi / 2 + 2 * math.pi / 3, math.pi / 2 + 4 * math.pi / 3)
        ]
        return torch.minimum(torch.minimum(sides[0], sides[1]), sides[2])
    if label == 5:  # cross
        arm_u = torch.minimum(width - u.abs(), 1.0 - v.abs())
        arm_v = torch.minimum(width - v.abs(), 1.0 - u.abs())
        return torch.maximum(arm_u, arm_v)
    if label in (6, 7, 8):  # bars in a square patch; the rotation set the orientation
        return torch.minimum(_stripes(v, freq, phase), patch)
    # checkerboard in a square patch
    phase2 = _uniform(g, n, 0.0, 2 * math.pi, 1, 1)
    checker = torch.sin(u * math.pi * freq + phase) * torch.sin(v * math.pi * freq + phase2)
    return torch.minimum(checker / (math.pi * freq), patch)


# base rotation of each class: None is any angle; bars keep their orientation up to a jitter
_BASE_ANGLE = {6: 0.0, 7: math.pi / 2, 8: math.pi / 4}
_JITTER = 0.25  # radians


def _paint(canvas: torch.Tensor, mask: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """Alpha-composite ``colour`` (n, 3) over ``canvas`` (n, 3, H, W) where ``mask`` (n, H, W)."""
    m = mask.unsqueeze(1)
    return canvas * (1 - m) + colour[:, :, None, None] * m


def _draw_class(label: int, n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """``n`` images of class ``label`` as floats in [0, 1], shape (n, 3, size, size)."""
    half = size / 2
    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / half - 1.0  # pixel centres in [-1, 1]
    ys, xs = torch.meshgrid(axis, axis, indexing="ij")
    xs, ys = xs.expand(n, size, size), ys.expand(n, size, size)

    # 1. shape: centre, scale, rotation, then the class's signed distance
    cx, cy = _uniform(g, n, -0.35, 0.35, 1, 1), _uniform(g, n, -0.35, 0.35, 1, 1)
    scale = _uniform(g, n, 0.45, 0.8, 1, 1)
    if label in _BASE_ANGLE:
        angle = _BASE_ANGLE[label] + _uniform(g, n, -_JITTER, _JITTER, 1, 1)
    else:
        angle = _uniform(g, n, 0.0, 2 * math.pi, 1, 1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    dx, dy = xs - cx, ys - cy
    u = (dx * cos + dy * sin) / scale
    v = (-dx * sin + dy * cos) / scale
    dist = _shape_distance(label, u, v, g)
    mask = (0.5 + dist * scale * half).clamp(0, 1)  # shape units -> pixels, 1-pixel antialiasing

    # 2. colours, independent of the class, with a minimum contrast
    bg = torch.rand(n, 3, generator=g)
    fg = torch.rand(n, 3, generator=g)
    low = (fg - bg).abs().amax(dim=1, keepdim=True) < 0.3
    fg = torch.where(low, (bg + 0.5) % 1.0, fg)

    # 3. textures and a background gradient
    gx, gy = _uniform(g, n, -0.15, 0.15, 1, 1, 1), _uniform(g, n, -0.15, 0.15, 1, 1, 1)
    back = bg[:, :, None, None] + gx * xs.unsqueeze(1) + gy * ys.unsqueeze(1)
    back = back + _uniform(g, n, 0.0, 0.15, 1, 1, 1) * _smooth_noise(g, n, 3, size)
    front = fg[:, :, None, None] * (
        1 + _uniform(g, n, 0.0, 0.3, 1, 1, 1) * _smooth_noise(g, n, 1, size)
    )
    m = mask.unsqueeze(1)
    image = back * (1 - m) + front * m

    # 4. clutter: three small discs and two short line segments in random colours
    for _ in range(3):
        px, py = _uniform(g, n, -1, 1, 1, 1), _uniform(g, n, -1, 1, 1, 1)
        radius = _uniform(g, n, 1.0, 2.5, 1, 1) / half
        d = torch.sqrt((xs - px) ** 2 + (ys - py) ** 2)
        blob = (0.5 + (radius - d) * half).clamp(0, 1)
        image = _paint(image, blob, torch.rand(n, 3, generator=g))
    for _ in range(2):
        ax, ay = _uniform(g, n, -1, 1, 1, 1), _uniform(g, n, -1, 1, 1, 1)
        theta = _uniform(g, n, 0.0, math.pi, 1, 1)
        length = _uniform(g, n, 5.0, 10.0, 1, 1) / half
        ex, ey = torch.cos(theta), torch.sin(theta)
        along = ((xs - ax) * ex + (ys - ay) * ey).clamp(min=0)
        along = torch.minimum(along, length)
        d = torch.sqrt((xs - ax - along * ex) ** 2 + (ys - ay - along * ey) ** 2)
        line = (0.5 + (0.5 / half - d) * half).clamp(0, 1)
        image = _paint(image, line, torch.rand(n, 3, generator=g))

    # 5. noise
    sigma = _uniform(g, n, 0.02, 0.08, 1, 1, 1)
    image = image + sigma * torch.randn(image.shape, generator=g)
    return image.clamp(0, 1)


def generate(n: int, seed: int = 0, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` EmbeddedShapes images (uint8, (n, 3, size, size)) and labels, balanced; chapter 9."""
    validate.integer("n", n, minimum=1)
    validate.integer("seed", seed, minimum=0)
    validate.integer("size", size, minimum=8)
    g = torch.Generator().manual_seed(_derive_seed("embedded", seed))
    counts = [n // 10 + (1 if c < n % 10 else 0) for c in range(10)]
    images = torch.empty(n, 3, size, size, dtype=torch.uint8)
    labels = torch.empty(n, dtype=torch.int64)
    start = 0
    for label, count in enumerate(counts):
        if count == 0:
            continue
        drawn = _draw_class(label, count, size, g)
        images[start : start + count] = (drawn * 255).round().to(torch.uint8)
        labels[start : start + count] = label
        start += count
    order = torch.randperm(n, generator=g)
    return images[order].contiguous(), labels[order].contiguous()


@lru_cache(maxsize=8)
def _cached(split: str, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return generate(n, seed=_derive_seed(split, seed) % 2**62)


# ---------------------------------------------------------------------------------------------
# EmbeddedShapes: the dataset


class EmbeddedShapes(Dataset):
    """The embedded offline dataset: uint8 ``images`` and ``labels``, normalised float samples.

    ``augment`` (the default for the train split) applies a random crop with 4 pixels of zero
    padding and a horizontal flip drawn from ``(seed, epoch, index)``; ``set_epoch`` moves to
    another epoch. ``transform``, when given, is applied to each sample's float tensor last.
    """

    classes = list(CLASSES)
    mean = MEAN
    std = STD

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        augment: bool = False,
        seed: int = 0,
        transform: Callable[[torch.Tensor], Any] | None = None,
    ) -> None:
        validate.tensor("images", images, dims=4)
        if images.dtype != torch.uint8:
            raise TypeError(f"images must be a uint8 tensor (n, 3, H, W), got dtype {images.dtype}")
        validate.tensor("labels", labels, dims=1)
        if len(labels) != len(images):
            raise ValueError(
                f"labels must hold one label per image ({len(images)}), got {len(labels)}"
            )
        validate.flag("augment", augment)
        validate.integer("seed", seed, minimum=0)
        if transform is not None:
            validate.function("transform", transform)
        self.images = images
        self.labels = labels
        self.augment = augment
        self.seed = seed
        self.transform = transform
        self._mean = torch.tensor(MEAN).view(1, 3, 1, 1) * 255
        self._std = torch.tensor(STD).view(1, 3, 1, 1) * 255
        self.set_epoch(0)

    def __len__(self) -> int:
        return self.images.shape[0]

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose crops and flips the train split applies."""
        self.epoch = validate.integer("epoch", epoch, minimum=0)
        if not self.augment:
            return
        g = torch.Generator().manual_seed(_derive_seed("augment", self.seed, epoch))
        n = len(self)
        self._offsets = torch.randint(0, 2 * _PAD + 1, (n, 2), generator=g)
        self._flips = torch.rand(n, generator=g) < 0.5

    def batch(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples ``indices`` as one float batch (n, 3, H, W) and their labels, vectorised."""
        idx = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        if idx.numel() and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"indices must lie in [0, {len(self)}), got {indices!r}")
        idx = idx % len(self)
        x = self.images[idx]
        if self.augment:
            x = self._crop_and_flip(x, idx)
        x = (x.float() - self._mean) / self._std
        return x, self.labels[idx]

    def _crop_and_flip(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        padded = F.pad(x, (_PAD, _PAD, _PAD, _PAD))  # zero (black) padding, as for CIFAR
        oy, ox = self._offsets[idx, 0], self._offsets[idx, 1]
        rows = oy[:, None] + torch.arange(h)
        cols = torch.where(
            self._flips[idx, None],
            ox[:, None] + torch.arange(w - 1, -1, -1),
            ox[:, None] + torch.arange(w),
        )
        out = padded[torch.arange(b)[:, None, None], :, rows[:, :, None], cols[:, None, :]]
        return out.permute(0, 3, 1, 2).contiguous()  # (b, h, w, c) -> (b, c, h, w)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        validate.integer("index", index)
        x, y = self.batch([index])
        x = x[0]
        return (self.transform(x) if self.transform else x), int(y[0])

    def __getitems__(self, indices: list[int]) -> list[tuple[Any, int]]:
        # DataLoader fetches whole batches through this: one vectorised crop per batch.
        x, y = self.batch(indices)
        t = self.transform
        return [((t(xi) if t else xi), int(yi)) for xi, yi in zip(x, y)]


def embedded(
    split: str = "train",
    n: int | None = None,
    seed: int = 0,
    augment: bool | None = None,
    transform: Callable[[torch.Tensor], Any] | None = None,
) -> EmbeddedShapes:
    """The embedded offline dataset, generated once per (split, n, seed) and cached; chapter 9.

    Datasets from the same (split, n, seed) share the cached ``images`` and ``labels`` tensors:
    clone them before editing in place.
    """
    validate.choice("split", split, SPLITS)
    n = SIZES[split] if n is None else validate.integer("n", n, minimum=1)
    validate.integer("seed", seed, minimum=0)
    augment = split == "train" if augment is None else validate.flag("augment", augment)
    if transform is not None:
        validate.function("transform", transform)
    images, labels = _cached(split, n, seed)
    return EmbeddedShapes(images, labels, augment=augment, seed=seed, transform=transform)


# ---------------------------------------------------------------------------------------------
# real data: CIFAR-10 and ImageNet-style folders (torchvision imported only here)


def _cifar10_help(root: str) -> str:
    archive = prefetch.DATASETS["cifar10"]
    return (
        f"CIFAR-10 was not found under {root!r} (expected the folder "
        f"{os.path.join(root, archive.folder)}). To get it, either call "
        f"cifar10({root!r}, download=True) on a machine with internet access (Colab has it), or "
        f"download {archive.url} elsewhere (MD5 {archive.md5}) and copy it into {root!r}, or run "
        f"python -m shufflelib.data prefetch --root {root} before going offline. Without the "
        "network, use embedded() instead."
    )


def _cifar10_transform(train: bool) -> Callable[[Any], torch.Tensor]:
    from torchvision import transforms as T

    normalize = T.Normalize(CIFAR10_MEAN, CIFAR10_STD)
    if train:
        steps = [T.RandomCrop(32, padding=4), T.RandomHorizontalFlip()]
    else:
        steps = []
    return T.Compose([*steps, T.ToTensor(), normalize])


def cifar10(
    root: str | os.PathLike, train: bool = True, download: bool = False, timeout: float = 3.0
) -> Dataset:
    """CIFAR-10 via torchvision with the standard augmentation for train; chapter 9.

    With ``download=True`` and no ``root/cifar-10-batches-py``, the archive is fetched and
    unpacked by :mod:`shufflelib.prefetch` (MD5-checked, atomic): its host must answer within
    ``timeout`` seconds, and a download that stalls that long gives up, each with a
    ``RuntimeError`` saying how to bring the files in. torchvision then reads the local files.
    """
    root = validate.path("root", root)
    validate.flag("train", train)
    validate.flag("download", download)
    timeout = validate.number("timeout", timeout, above=0)
    import torchvision

    archive = prefetch.DATASETS["cifar10"]
    if not os.path.isdir(os.path.join(root, archive.folder)):
        if not download:
            raise FileNotFoundError(_cifar10_help(root))
        try:
            prefetch.fetch(archive, root, timeout=timeout, progress=True, log=print)
            prefetch.extract(archive, root, log=print)
        except RuntimeError as e:
            raise net.Unavailable(f"{e} " + _cifar10_help(root)) from e
    tf = _cifar10_transform(train)
    try:
        return torchvision.datasets.CIFAR10(root, train=train, transform=tf, download=False)
    except RuntimeError as e:  # torchvision: "Dataset not found or corrupted"
        raise FileNotFoundError(f"{e}. " + _cifar10_help(root)) from e


def _folder_help(root: str) -> str:
    return (
        f"expected an ImageNet-style folder: {root}/<class>/<image> (e.g. "
        f"{os.path.join(root, 'class_x', 'xxx.png')}), one sub-folder per class. Imagenette "
        "(https://github.com/fastai/imagenette) unpacks to that layout: pass its train/ or val/."
    )


def image_folder(root: str | os.PathLike, train: bool = True, size: int = 224) -> Dataset:
    """An ImageNet-style folder via torchvision's ImageFolder and ImageNet transforms; chapter 9."""
    root = validate.path("root", root)
    validate.flag("train", train)
    validate.integer("size", size, minimum=8)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"no folder at {root!r}; " + _folder_help(root))
    import torchvision
    from torchvision import transforms as T

    normalize = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    if train:
        steps = [T.RandomResizedCrop(size), T.RandomHorizontalFlip()]
    else:
        steps = [T.Resize(round(size * 256 / 224)), T.CenterCrop(size)]
    tf = T.Compose([*steps, T.ToTensor(), normalize])
    try:
        return torchvision.datasets.ImageFolder(root, transform=tf)
    except FileNotFoundError as e:  # no class folders, or no images in them
        raise FileNotFoundError(f"{e}; " + _folder_help(root)) from e


# ---------------------------------------------------------------------------------------------
# loading


def default_workers(cpus: int | None = None) -> int:
    """DataLoader workers for a machine with ``cpus`` cores: one core stays free, at most 2."""
    cpus = os.cpu_count() if cpus is None else validate.integer("cpus", cpus, minimum=1)
    return max(0, min(2, (cpus or 1) - 1))


def loader(
    dataset: Dataset,
    batch_size: int,
    train: bool,
    seed: int = 0,
    epoch: int = 0,
    workers: int | None = None,
) -> DataLoader:
    """A DataLoader whose order (and embedded augmentation) is a function of seed and epoch; ch. 9.

    Train shuffles with a generator seeded from ``(seed, epoch)`` and drops the last partial
    batch (a batch of one breaks batch norm); eval keeps the order. A dataset with ``set_epoch``
    (EmbeddedShapes) is moved to ``epoch``. ``workers`` defaults to ``default_workers()``.
    """
    validate.instance("dataset", dataset, Dataset)
    if not hasattr(dataset, "__len__"):
        raise TypeError(f"dataset must be a torch Dataset with a length, got {dataset!r}")
    validate.integer("batch_size", batch_size, minimum=1)
    validate.flag("train", train)
    validate.integer("seed", seed, minimum=0)
    validate.integer("epoch", epoch, minimum=0)
    cpus = os.cpu_count() or 1
    if workers is None:
        workers = default_workers(cpus)
    validate.integer("workers", workers, 0, cpus)  # at most this machine's cores
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    generator = torch.Generator().manual_seed(_derive_seed("loader", seed, epoch))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        drop_last=train and len(dataset) > batch_size,
        num_workers=workers,
        generator=generator,
        pin_memory=torch.cuda.is_available(),
    )


# ---------------------------------------------------------------------------------------------
# command line: python -m shufflelib.data prefetch --root DIR (the work is in shufflelib.prefetch)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m shufflelib.data prefetch --root DIR``: fetch and verify real datasets; ch. 9."""
    return prefetch.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
