"""Published numbers, each table with its source, for side-by-side tables in the book.

Every value is copied from the papers' own tables (cited in each table's title) and from
torchvision's published metadata. Nothing here is measured or computed:
ratios to the paper's numbers are taken where they are used. Where the paper prints no number
the value is ``None``. Chapters that use the tables:

- chapter 4 (the four guidelines G1-G4): ``shufflenet_v2.table1`` to ``shufflenet_v2.table4``,
  also read by :mod:`shufflelib.guidelines` for its "paper GPU" / "paper ARM" columns;
- chapter 5 (ShuffleNet V1): ``shufflenet_v1.table1``, ``table2``, ``table3``, ``table5``,
  ``table8``;
- chapter 6 (MobileNetV2): ``mobilenet_v2.table2``, ``mobilenet_v2.table4``;
- chapter 7 (ShuffleNet V2): ``shufflenet_v2.table5``, ``shufflenet_v2.table8``;
- chapter 8 (EfficientNetV2): ``efficientnet_v2.table4``, ``efficientnet_v2.table6`` (and
  :func:`progressive_schedule`, its linear interpolation);
- chapter 12 (FasterNet): ``fasternet.table1`` (operators), ``fasternet.table3`` (ImageNet);
- chapters 5 to 8 and 11: ``torchvision.metadata`` (parameters, GFLOPS, accuracy of the
  pretrained weights);
- chapter 13 (re-parameterisation): ``repvgg.table4``, ``mobileone.table9``.

Usage: ``reference.table("shufflenet_v2.table1")`` returns a fresh :class:`~shufflelib.tables.Table`
whose ``title`` is the source and whose ``note`` carries the caveats; ``reference.names()`` lists
the tables. A column is keyed by its name and a measured quantity declares its unit, as every
table of the book does (``table("mobilenet_v2.table4").unit("CPU")`` is "ms").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import validate
from .tables import Table

__all__ = ["names", "table", "progressive_schedule"]

_SNV2 = "ShuffleNet V2 (Ma et al., ECCV 2018, arXiv:1807.11164)"
_SNV1 = "ShuffleNet (Zhang et al., CVPR 2018, arXiv:1707.01083)"
_MNV2 = "MobileNetV2 (Sandler et al., CVPR 2018, arXiv:1801.04381)"
_ENV2 = "EfficientNetV2 (Tan and Le, ICML 2021, arXiv:2104.00298)"
_FN = "FasterNet (Chen et al., CVPR 2023, arXiv:2303.03667)"
_REPVGG = "RepVGG (Ding et al., CVPR 2021, arXiv:2101.03697)"
_MOBILEONE = "MobileOne (Vasu et al., CVPR 2023, arXiv:2206.04040)"
_SPEED = "GPU: GTX 1080Ti batches/s, ARM: Snapdragon 810 images/s"
_CPU_LABEL = (
    "The paper labels the ARM column 'CPU (Images/sec.)' in Tables 2-4; it is the same "
    "Snapdragon 810 as Table 1's ARM column."
)


@dataclass(frozen=True)
class _Ref:
    source: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    note: str = ""
    units: tuple[tuple[str, str], ...] = ()  # (column, unit) pairs: ("err", "%")

    def build(self) -> Table:
        for row in self.rows:  # a guard on the transcription below, not on user input
            if len(row) != len(self.columns):
                raise RuntimeError(f"row {row!r} does not match columns {self.columns!r}")
        rows = (dict(zip(self.columns, row)) for row in self.rows)
        return Table(rows, title=self.source, note=self.note, units=dict(self.units))


# --- ShuffleNet V2, Sec. 2: the guideline experiments (chapter 4) -----------------------------

_SNV2_TABLE1 = _Ref(
    source=f"{_SNV2}, Table 1 (G1); {_SPEED}",
    columns=(
        "c1:c2",
        "GPU c1",
        "GPU c2",
        "GPU x1",
        "GPU x2",
        "GPU x4",
        "ARM c1",
        "ARM c2",
        "ARM x1",
        "ARM x2",
        "ARM x4",
    ),
    rows=(
        ("1:1", 128, 128, 1480, 723, 232, 32, 32, 76.2, 21.7, 5.3),
        ("1:2", 90, 180, 1296, 586, 206, 22, 44, 72.9, 20.5, 5.1),
        ("1:6", 52, 312, 876, 489, 189, 13, 78, 69.1, 17.9, 4.6),
        ("1:12", 36, 432, 748, 392, 163, 9, 108, 57.6, 15.1, 4.4),
    ),
    note=(
        "10 blocks of two 1x1 convs (c1->c2, c2->c1), total FLOPs fixed, input 56x56; GPU batch "
        "8, ARM batch 1. (c1, c2) are printed for the x1 columns only; that x2 and x4 scale the "
        "channels is our reading."
    ),
)

_SNV2_TABLE2 = _Ref(
    source=f"{_SNV2}, Table 2 (G2); {_SPEED}",
    columns=("g", "GPU c", "GPU x1", "GPU x2", "GPU x4", "ARM c", "ARM x1", "ARM x2", "ARM x4"),
    rows=(
        (1, 128, 2451, 1289, 437, 64, 40.0, 10.2, 2.3),
        (2, 180, 1725, 873, 341, 90, 35.0, 9.5, 2.2),
        (4, 256, 1026, 644, 338, 128, 32.9, 8.7, 2.1),
        (8, 360, 634, 445, 230, 180, 27.8, 7.5, 1.8),
    ),
    note=(
        "10 stacked 1x1 group convs, total FLOPs fixed by changing c, input 56x56; c is printed "
        f"for the x1 columns only. {_CPU_LABEL}"
    ),
)

_SNV2_TABLE3 = _Ref(
    source=f"{_SNV2}, Table 3 (G3); {_SPEED}",
    columns=(
        "structure",
        "GPU c=128",
        "GPU c=256",
        "GPU c=512",
        "ARM c=64",
        "ARM c=128",
        "ARM c=256",
    ),
    rows=(
        ("1-fragment", 2446, 1274, 434, 40.2, 10.1, 2.3),
        ("2-fragment-series", 1790, 909, 336, 38.6, 10.1, 2.2),
        ("4-fragment-series", 752, 745, 349, 38.4, 10.1, 2.3),
        ("2-fragment-parallel", 1537, 803, 320, 33.4, 9.1, 2.2),
        ("4-fragment-parallel", 691, 572, 292, 35.0, 8.4, 2.1),
    ),
    note=(
        "Blocks of 1 to 4 1x1 convs in series or in parallel, stacked 10 times, input 56x56; c "
        "is the width of the 1-fragment block, the others adjust channels to equal FLOPs. "
        f"{_CPU_LABEL}"
    ),
)

_SNV2_TABLE4 = _Ref(
    source=f"{_SNV2}, Table 4 (G4); {_SPEED}",
    columns=(
        "ReLU",
        "shortcut",
        "GPU c=32",
        "GPU c=64",
        "GPU c=128",
        "ARM c=32",
        "ARM c=64",
        "ARM c=128",
    ),
    rows=(
        ("yes", "yes", 2427, 2066, 1436, 56.7, 16.9, 5.0),
        ("yes", "no", 2647, 2256, 1735, 61.9, 18.8, 5.2),
        ("no", "yes", 2672, 2121, 1458, 57.3, 18.2, 5.1),
        ("no", "no", 2842, 2376, 1782, 66.3, 20.2, 5.4),
    ),
    note=(
        "ResNet bottleneck unit (1x1 -> 3x3 -> 1x1, with ReLU and shortcut) stacked 10 times; "
        f"c is the number of channels in the unit. {_CPU_LABEL}"
    ),
)

# --- ShuffleNet V2, Sec. 3-4: the architecture and the comparison (chapter 7) ------------------

_SNV2_TABLE5 = _Ref(
    source=f"{_SNV2}, Table 5 (overall architecture, output channels per width)",
    columns=(
        "layer",
        "output size",
        "ksize",
        "stride",
        "repeat",
        "0.5x",
        "1x",
        "1.5x",
        "2x",
    ),
    rows=(
        ("Image", 224, None, None, None, 3, 3, 3, 3),
        ("Conv1", 112, 3, 2, 1, 24, 24, 24, 24),
        ("MaxPool", 56, 3, 2, 1, 24, 24, 24, 24),
        ("Stage2", 28, None, (2, 1), (1, 3), 48, 116, 176, 244),
        ("Stage3", 14, None, (2, 1), (1, 7), 96, 232, 352, 488),
        ("Stage4", 7, None, (2, 1), (1, 3), 192, 464, 704, 976),
        ("Conv5", 7, 1, 1, 1, 1024, 1024, 1024, 2048),
        ("GlobalPool", 1, 7, None, None, None, None, None, None),
        ("FC", None, None, None, None, 1000, 1000, 1000, 1000),
        ("FLOPs (M)", None, None, None, None, 41, 146, 299, 591),
        ("# of weights (M)", None, None, None, None, 1.4, 2.3, 3.5, 7.4),
    ),
    note=(
        "'output size' is the side of the square map (224 means 224x224), 'ksize' the side of "
        "the kernel; a stage's stride and repeat are (first unit, other units). FLOPs are "
        "multiply-adds."
    ),
)

_SNV2_TABLE8 = _Ref(
    source=(
        f"{_SNV2}, Table 8 (ImageNet val, single center crop; GPU: GTX 1080Ti batch 8, "
        "batches/s; ARM: Snapdragon 810 batch 1, images/s)"
    ),
    columns=("model", "input", "MFLOPs", "top-1 err", "GPU", "ARM"),
    units=(("top-1 err", "%"), ("GPU", "batches/s"), ("ARM", "images/s")),
    rows=(
        ("ShuffleNet v2 0.5x (ours)", 224, 41, 39.7, 417, 57.0),
        ("0.25 MobileNet v1", 224, 41, 49.4, 502, 36.4),
        ("0.4 MobileNet v2 (our impl.)", 160, 43, 43.4, 333, 33.2),
        ("0.15 MobileNet v2 (our impl.)", 224, 39, 55.1, 351, 33.6),
        ("ShuffleNet v1 0.5x (g=3)", 224, 38, 43.2, 347, 56.8),
        ("DenseNet 0.5x (our impl.)", 224, 42, 58.6, 366, 39.7),
        ("Xception 0.5x (our impl.)", 224, 40, 44.9, 384, 52.9),
        ("IGCV2-0.25", 224, 46, 45.1, 183, 31.5),
        ("ShuffleNet v2 1x (ours)", 224, 146, 30.6, 341, 24.4),
        ("0.5 MobileNet v1", 224, 149, 36.3, 382, 16.5),
        ("0.75 MobileNet v2 (our impl.)", 192, 145, 32.1, 235, 15.9),
        ("0.6 MobileNet v2 (our impl.)", 224, 141, 33.3, 249, 14.9),
        ("ShuffleNet v1 1x (g=3)", 224, 140, 32.6, 213, 21.8),
        ("DenseNet 1x (our impl.)", 224, 142, 45.2, 279, 15.8),
        ("Xception 1x (our impl.)", 224, 145, 34.1, 278, 19.5),
        ("IGCV2-0.5", 224, 156, 34.5, 132, 15.5),
        ("IGCV3-D (0.7)", 224, 210, 31.5, 143, 11.7),
        ("ShuffleNet v2 1.5x (ours)", 224, 299, 27.4, 255, 11.8),
        ("0.75 MobileNet v1", 224, 325, 31.6, 314, 10.6),
        ("1.0 MobileNet v2", 224, 300, 28.0, 180, 8.9),
        ("1.0 MobileNet v2 (our impl.)", 224, 301, 28.3, 180, 8.9),
        ("ShuffleNet v1 1.5x (g=3)", 224, 292, 28.5, 164, 10.3),
        ("DenseNet 1.5x (our impl.)", 224, 295, 39.9, 274, 9.7),
        ("CondenseNet (G=C=8)", 224, 274, 29.0, None, None),
        ("Xception 1.5x (our impl.)", 224, 305, 29.4, 219, 10.5),
        ("IGCV3-D", 224, 318, 27.8, 102, 6.3),
        ("ShuffleNet v2 2x (ours)", 224, 591, 25.1, 217, 6.7),
        ("1.0 MobileNet v1", 224, 569, 29.4, 247, 6.5),
        ("1.4 MobileNet v2", 224, 585, 25.3, 137, 5.4),
        ("1.4 MobileNet v2 (our impl.)", 224, 587, 26.7, 137, 5.4),
        ("ShuffleNet v1 2x (g=3)", 224, 524, 26.3, 133, 6.4),
        ("DenseNet 2x (our impl.)", 224, 519, 34.6, 197, 6.1),
        ("CondenseNet (G=C=4)", 224, 529, 26.2, None, None),
        ("Xception 2x (our impl.)", 224, 525, 27.6, 174, 6.7),
        ("IGCV2-1.0", 224, 564, 29.3, 81, 4.9),
        ("IGCV3-D (1.4)", 224, 610, 25.5, 82, 4.5),
        ("ShuffleNet v2 2x (ours, with SE)", 224, 597, 24.6, 161, 5.6),
        ("NASNet-A (4 @ 1056, our impl.)", 224, 564, 26.0, 130, 4.6),
        ("PNASNet-5 (our impl.)", 224, 588, 25.8, 115, 4.1),
    ),
    note=(
        "'input' is the image side: the paper marks 160x160 rows with * and 192x192 rows with **; "
        "all others are 224x224. CondenseNet has no speed numbers. The rows were read from "
        "a text version of Ma et al. (2018), Table 8, not checked against a second copy."
    ),
)

# --- ShuffleNet V1 (chapter 5) ----------------------------------------------------------------

_SNV1_TABLE1 = _Ref(
    source=f"{_SNV1}, Table 1 (ShuffleNet 1x architecture, output channels per group count g)",
    columns=(
        "layer",
        "output size",
        "ksize",
        "stride",
        "repeat",
        "g=1",
        "g=2",
        "g=3",
        "g=4",
        "g=8",
    ),
    rows=(
        ("Image", 224, None, None, None, 3, 3, 3, 3, 3),
        ("Conv1", 112, 3, 2, 1, 24, 24, 24, 24, 24),
        ("MaxPool", 56, 3, 2, None, None, None, None, None, None),
        ("Stage2", 28, None, (2, 1), (1, 3), 144, 200, 240, 272, 384),
        ("Stage3", 14, None, (2, 1), (1, 7), 288, 400, 480, 544, 768),
        ("Stage4", 7, None, (2, 1), (1, 3), 576, 800, 960, 1088, 1536),
        ("GlobalPool", 1, 7, None, None, None, None, None, None, None),
        ("FC", None, None, None, None, 1000, 1000, 1000, 1000, 1000),
        ("Complexity (MFLOPs)", None, None, None, None, 143, 140, 137, 133, 137),
    ),
    note=(
        "'output size' is the side of the square map, 'ksize' the side of the kernel; a stage's "
        "stride and repeat are (first unit, other units). Stage 2's first pointwise layer is not "
        "grouped; bottleneck channels are 1/4 of the output channels. Several re-implementations "
        "print 567 for g=1 Stage4: the paper says 576."
    ),
)

_SNV1_TABLE2 = _Ref(
    source=f"{_SNV1}, Table 2 (ImageNet top-1 error (%) vs number of groups g; smaller is better)",
    columns=("model", "MFLOPs", "g=1", "g=2", "g=3", "g=4", "g=8"),
    rows=(
        ("ShuffleNet 1x", 140, 33.6, 32.7, 32.6, 32.8, 32.4),
        ("ShuffleNet 0.5x", 38, 45.1, 44.4, 43.2, 41.6, 42.3),
        ("ShuffleNet 0.25x", 13, 57.1, 56.8, 55.0, 54.2, 52.7),
    ),
)

_SNV1_TABLE3 = _Ref(
    source=f"{_SNV1}, Table 3 (ImageNet top-1 error (%) with and without channel shuffle)",
    columns=("model", "err no shuffle", "err shuffle", "delta err"),
    units=(("err no shuffle", "%"), ("err shuffle", "%"), ("delta err", "%")),
    rows=(
        ("ShuffleNet 1x (g=3)", 34.5, 32.6, 1.9),
        ("ShuffleNet 1x (g=8)", 37.6, 32.4, 5.2),
        ("ShuffleNet 0.5x (g=3)", 45.7, 43.2, 2.5),
        ("ShuffleNet 0.5x (g=8)", 48.1, 42.3, 5.8),
        ("ShuffleNet 0.25x (g=3)", 56.3, 55.0, 1.3),
        ("ShuffleNet 0.25x (g=8)", 56.5, 52.7, 3.8),
    ),
)

_SNV1_TABLE5 = _Ref(
    source=f"{_SNV1}, Table 5 (ImageNet top-1 error (%) vs MobileNet)",
    columns=("model", "MFLOPs", "err", "delta err"),
    units=(("err", "%"), ("delta err", "%")),
    rows=(
        ("1.0 MobileNet-224", 569, 29.4, None),
        ("ShuffleNet 2x (g=3)", 524, 26.3, 3.1),
        ("ShuffleNet 2x (with SE, g=3)", 527, 24.7, 4.7),
        ("0.75 MobileNet-224", 325, 31.6, None),
        ("ShuffleNet 1.5x (g=3)", 292, 28.5, 3.1),
        ("0.5 MobileNet-224", 149, 36.3, None),
        ("ShuffleNet 1x (g=8)", 140, 32.4, 3.9),
        ("0.25 MobileNet-224", 41, 49.4, None),
        ("ShuffleNet 0.5x (g=4)", 38, 41.6, 7.8),
        ("ShuffleNet 0.5x (shallow, g=3)", 40, 42.8, 6.6),
    ),
)

_SNV1_TABLE8 = _Ref(
    source=f"{_SNV1}, Table 8 (inference time, Qualcomm Snapdragon 820, single thread)",
    columns=("model", "err", "MFLOPs", "224x224", "480x640", "720x1280"),
    units=(("err", "%"), ("224x224", "ms"), ("480x640", "ms"), ("720x1280", "ms")),
    rows=(
        ("ShuffleNet 0.5x (g=3)", 43.2, 38, 15.2, 87.4, 260.1),
        ("ShuffleNet 1x (g=3)", 32.6, 140, 37.8, 222.2, 684.5),
        ("ShuffleNet 2x (g=3)", 26.3, 524, 108.8, 617.0, 1857.6),
        ("AlexNet", 42.8, 720, 184.0, 1156.7, 3633.9),
        ("1.0 MobileNet-224", 29.4, 569, 110.0, 612.0, 1879.2),
    ),
)

# --- MobileNetV2 (chapter 6) ------------------------------------------------------------------

_MNV2_TABLE2 = _Ref(
    source=f"{_MNV2}, Table 2 (architecture: t expansion, c channels, n repeats, s first stride)",
    columns=("input", "operator", "t", "c", "n", "s"),
    rows=(
        ((224, 224, 3), "conv2d", None, 32, 1, 2),
        ((112, 112, 32), "bottleneck", 1, 16, 1, 1),
        ((112, 112, 16), "bottleneck", 6, 24, 2, 2),
        ((56, 56, 24), "bottleneck", 6, 32, 3, 2),
        ((28, 28, 32), "bottleneck", 6, 64, 4, 2),
        ((14, 14, 64), "bottleneck", 6, 96, 3, 1),
        ((14, 14, 96), "bottleneck", 6, 160, 3, 2),
        ((7, 7, 160), "bottleneck", 6, 320, 1, 1),
        ((7, 7, 320), "conv2d 1x1", None, 1280, 1, 1),
        ((7, 7, 1280), "avgpool 7x7", None, None, 1, None),
        ((1, 1, 1280), "conv2d 1x1", None, "k", None, None),
    ),
    note=(
        "'input' is (height, width, channels); 'k' is the number of classes. The primary network "
        "(width 1, 224x224) costs 300M multiply-adds and has 3.4M parameters."
    ),
)

_MNV2_TABLE4 = _Ref(
    source=(f"{_MNV2}, Table 4 (ImageNet; CPU: one large core of a Google Pixel 1, TF-Lite)"),
    columns=("network", "top-1", "params", "MAdds", "CPU"),
    units=(("top-1", "%"), ("params", "M"), ("MAdds", "M"), ("CPU", "ms")),
    rows=(
        ("MobileNetV1", 70.6, 4.2, 575, 113),
        ("ShuffleNet (1.5)", 71.5, 3.4, 292, None),
        ("ShuffleNet (x2)", 73.7, 5.4, 524, None),
        ("NasNet-A", 74.0, 5.3, 564, 183),
        ("MobileNetV2", 72.0, 3.4, 300, 75),
        ("MobileNetV2 (1.4)", 74.7, 6.9, 585, 143),
    ),
    note="Some transcriptions number this table 'Table 3'.",
)

# --- EfficientNetV2 (chapter 8) ---------------------------------------------------------------

_ENV2_TABLE4 = _Ref(
    source=(
        f"{_ENV2}, Table 4 (EfficientNetV2-S architecture), as transcribed by "
        "leondgarse/keras_cv_attention_models and identical to google/automl "
        "efficientnetv2/effnetv2_configs.py v2_s_block"
    ),
    columns=("stage", "operator", "stride", "channels", "layers", "expansion", "SE"),
    rows=(
        (0, "Conv3x3", 2, 24, 1, None, None),
        (1, "Fused-MBConv1, k3x3", 1, 24, 2, 1, None),
        (2, "Fused-MBConv4, k3x3", 2, 48, 4, 4, None),
        (3, "Fused-MBConv4, k3x3", 2, 64, 4, 4, None),
        (4, "MBConv4, k3x3, SE0.25", 2, 128, 6, 4, 0.25),
        (5, "MBConv6, k3x3, SE0.25", 1, 160, 9, 6, 0.25),
        (6, "MBConv6, k3x3, SE0.25", 2, 256, 15, 6, 0.25),
        (7, "Conv1x1 & Pooling & FC", None, 1280, 1, None, None),
    ),
    note="'expansion' is read from the operator name (MBConv6 expands 6x); a dash: not applicable.",
)

_ENV2_TABLE6 = _Ref(
    source=(
        f"{_ENV2}, Table 6 (progressive training settings; min = first stage, max = last stage), "
        "as transcribed by leondgarse/keras_cv_attention_models"
    ),
    columns=("setting", "S min", "S max", "M min", "M max", "L min", "L max"),
    rows=(
        ("image size", 128, 300, 128, 380, 128, 380),
        ("RandAugment", 5, 15, 5, 20, 5, 25),
        ("mixup alpha", 0, 0, 0, 0.2, 0, 0.4),
        ("dropout", 0.1, 0.3, 0.1, 0.4, 0.1, 0.5),
    ),
    note=(
        "Four stages of about 87 epochs, settings interpolated linearly (Algorithm 1). "
        "The official code's maxima differ (RandAug 10/15/20, mixup 0/0.2/0.5, "
        "size 300/384/384) and it does not schedule dropout."
    ),
)

# --- FasterNet (chapter 12) -------------------------------------------------------------------

_FN_DEVICES = (
    "GPU: RTX 2080Ti, batch 32; CPU: Intel i9-9900X, one thread, batch 1; "
    "ARM: Cortex-A72, one thread, batch 1"
)

_FN_TABLE1 = _Ref(
    source=f"{_FN}, Table 1 (3x3 operators, 10 stacked layers; {_FN_DEVICES})",
    columns=(
        "operator",
        "map",
        "FLOPs",
        "GPU throughput",
        "GPU FLOPS",
        "CPU latency",
        "CPU FLOPS",
        "ARM latency",
        "ARM FLOPS",
    ),
    rows=(
        ("Conv 3x3", "96\u00d756\u00d756", 2601, 3010, 7824, 35.67, 72.90, 779.57, 3.33),
        ("Conv 3x3", "192\u00d728\u00d728", 2601, 4893, 12717, 28.41, 91.53, 619.64, 4.19),
        ("Conv 3x3", "384\u00d714\u00d714", 2601, 4558, 11854, 31.85, 81.66, 595.09, 4.37),
        ("Conv 3x3", "768\u00d77\u00d77", 2601, 3159, 8212, 62.71, 41.47, 662.17, 3.92),
        ("GConv 3x3 (16 groups)", "96\u00d756\u00d756", 162, 2888, 469, 21.90, 7.42, 166.30, 0.97),
        (
            "GConv 3x3 (16 groups)",
            "192\u00d728\u00d728",
            162,
            10811,
            1754,
            7.58,
            21.44,
            96.22,
            1.68,
        ),
        (
            "GConv 3x3 (16 groups)",
            "384\u00d714\u00d714",
            162,
            15534,
            2514,
            4.40,
            36.88,
            63.57,
            2.55,
        ),
        ("GConv 3x3 (16 groups)", "768\u00d77\u00d77", 162, 16000, 2598, 4.28, 37.97, 65.20, 2.49),
        ("DWConv 3x3", "96\u00d756\u00d756", 27.09, 11940, 323, 3.59, 7.52, 108.70, 0.24),
        ("DWConv 3x3", "192\u00d728\u00d728", 13.54, 23358, 315, 1.97, 6.86, 82.01, 0.16),
        ("DWConv 3x3", "384\u00d714\u00d714", 6.77, 46377, 313, 1.06, 6.35, 94.89, 0.07),
        ("DWConv 3x3", "768\u00d77\u00d77", 3.38, 88889, 302, 0.68, 4.93, 150.89, 0.02),
        ("PConv 3x3", "96\u00d756\u00d756", 162, 9215, 1493, 5.46, 29.67, 85.30, 1.90),
        ("PConv 3x3", "192\u00d728\u00d728", 162, 14360, 2326, 3.09, 52.43, 66.46, 2.44),
        ("PConv 3x3", "384\u00d714\u00d714", 162, 24408, 3954, 3.58, 45.25, 49.98, 3.24),
        ("PConv 3x3", "768\u00d77\u00d77", 162, 32866, 5324, 5.02, 32.27, 48.30, 3.35),
    ),
    note=(
        "'map' is channels x height x width; every operator keeps the map's width (PConv with "
        "r = 1/4), so their FLOPs differ. FLOPs are multiply-adds of the 10 layers (the paper's "
        "footnote 1); FLOPS are multiply-adds per second (G/s). The paper's averages over the "
        "four maps: CPU FLOPS 71.89 (Conv), 25.93 (GConv), 6.42 (DWConv), 39.91 (PConv)."
    ),
    units=(
        ("FLOPs", "M"),
        ("GPU throughput", "images/s"),
        ("GPU FLOPS", "G/s"),
        ("CPU latency", "ms"),
        ("CPU FLOPS", "G/s"),
        ("ARM latency", "ms"),
        ("ARM FLOPS", "G/s"),
    ),
)

_FN_TABLE3 = _Ref(
    source=f"{_FN}, Table 3 (ImageNet-1k; {_FN_DEVICES})",
    columns=("network", "params", "FLOPs", "GPU throughput", "CPU latency", "ARM latency", "top-1"),
    rows=(
        ("ShuffleNetV2 x1.5", 3.5, 0.30, 4878, 12.1, 266, 72.6),
        ("MobileNetV2", 3.5, 0.31, 4198, 12.2, 442, 72.0),
        ("MobileViT-XXS", 1.3, 0.42, 2393, 30.8, 348, 69.0),
        ("EdgeNeXt-XXS", 1.3, 0.26, 2765, 15.7, 239, 71.2),
        ("FasterNet-T0", 3.9, 0.34, 6807, 9.2, 143, 71.9),
        ("GhostNet x1.3", 7.4, 0.24, 2988, 17.9, 481, 75.7),
        ("ShuffleNetV2 x2", 7.4, 0.59, 3339, 17.8, 403, 74.9),
        ("MobileNetV2 x1.4", 6.1, 0.60, 2711, 22.6, 650, 74.7),
        ("MobileViT-XS", 2.3, 1.05, 1392, 40.8, 648, 74.8),
        ("EdgeNeXt-XS", 2.3, 0.54, 1738, 24.4, 434, 75.0),
        ("PVT-Tiny", 13.2, 1.94, 1266, 55.6, 708, 75.1),
        ("FasterNet-T1", 7.6, 0.85, 3782, 17.7, 285, 76.2),
        ("CycleMLP-B1", 15.2, 2.10, 865, 116.1, 892, 79.1),
        ("PoolFormer-S12", 11.9, 1.82, 1439, 49.0, 665, 77.2),
        ("MobileViT-S", 5.6, 2.03, 1039, 56.7, 941, 78.4),
        ("EdgeNeXt-S", 5.6, 1.26, 1128, 39.2, 743, 79.4),
        ("ResNet50", 25.6, 4.11, 959, 73.0, 1131, 78.8),
        ("FasterNet-T2", 15.0, 1.91, 1991, 33.5, 497, 78.9),
    ),
    note=(
        "The first three groups of the table (up to FasterNet-T2). FLOPs are multiply-adds "
        "(the paper's footnote 1); BatchNorm is merged into the convolutions for every timing. "
        "The appendix's Table 8 (architectures) prints 1.90 G for FasterNet-T2, as does the "
        "official repository's README (github.com/JierunChen/FasterNet); Table 3 prints 1.91."
    ),
    units=(
        ("params", "M"),
        ("FLOPs", "G"),
        ("GPU throughput", "images/s"),
        ("CPU latency", "ms"),
        ("ARM latency", "ms"),
        ("top-1", "%"),
    ),
)

# --- RepVGG and MobileOne (chapter 13) -------------------------------------------------------

_REPVGG_TABLE4 = _Ref(
    source=f"{_REPVGG}, Table 4 (RepVGG-A on ImageNet, 120 epochs)",
    columns=("model", "top-1", "params", "FLOPs"),
    rows=(
        ("RepVGG-A0", 72.41, 8.30, 1.4),
        ("RepVGG-A1", 74.46, 12.78, 2.4),
        ("RepVGG-A2", 76.48, 25.49, 5.1),
    ),
    note=(
        "Params and FLOPs are those of the deployed (folded) network: one 3x3 convolution per "
        "block. FLOPs are multiply-adds, printed to one decimal. Checked against second sources: "
        "A0's top-1 against the authors' README (DingXiaoH/RepVGG: '72.41'), the three top-1 "
        "values against PaddleClas's 'reference top1' (0.7241, 0.7446, 0.7648), params and FLOPs "
        "against mmpretrain's deploy-mode counts (8.31/12.79/25.50 M, 1.36/2.37/5.12 G). The "
        "table's GPU speeds (GTX 1080Ti) and Winograd multiplication counts are left out."
    ),
    units=(("top-1", "%"), ("params", "M"), ("FLOPs", "G")),
)

_MOBILEONE_TABLE9 = _Ref(
    source=(
        f"{_MOBILEONE}, Table 9 (ImageNet, 224x224, trained without distillation; latency: "
        "iPhone 12, Core ML)"
    ),
    columns=("model", "params", "FLOPs", "top-1", "latency"),
    rows=(
        ("MobileOne-S0", 2.1, 275, 71.4, 0.79),
        ("MobileOne-S1", 4.8, 825, 75.9, 0.89),
        ("MobileOne-S2", 7.8, 1299, 77.4, 1.18),
        ("MobileOne-S3", 10.1, 1896, 78.1, 1.53),
        ("MobileOne-S4", 14.8, 2978, 79.4, 1.86),
    ),
    note=(
        "Params and FLOPs are those of the deployed (re-parameterised) network; the paper counts "
        "FLOPs (multiply-adds) with fvcore. Checked against second sources: top-1 and latency "
        "against the authors' README (apple/ml-mobileone, whose footnote says the latency was "
        "measured on an iPhone 12 Pro), params of S2-S4 against Papers with Code (7.8, 10.1, "
        "14.8 M), and the FLOPs of S2 and S3 against mmpretrain's deploy-mode counts (1.31 and "
        "1.91 G, within 1%). S1's params and the FLOPs of S1 and S4 were not checked against a "
        "second source."
    ),
    units=(("params", "M"), ("FLOPs", "M"), ("top-1", "%"), ("latency", "ms")),
)

# --- torchvision (chapters 5-8, 11) -----------------------------------------------------------

_TV_METADATA = _Ref(
    source=(
        "torchvision 0.29.1 weights metadata (num_params, _ops GFLOPS, ImageNet-1K acc@1/acc@5, "
        "_file_size MB)"
    ),
    columns=("model", "weights", "params", "GFLOPS", "acc@1", "acc@5", "file size"),
    units=(("file size", "MB"),),
    rows=(
        (
            "shufflenet_v2_x0_5",
            "ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1",
            1366792,
            0.04,
            60.552,
            81.746,
            5.282,
        ),
        (
            "shufflenet_v2_x1_0",
            "ShuffleNet_V2_X1_0_Weights.IMAGENET1K_V1",
            2278604,
            0.145,
            69.362,
            88.316,
            8.791,
        ),
        (
            "shufflenet_v2_x1_5",
            "ShuffleNet_V2_X1_5_Weights.IMAGENET1K_V1",
            3503624,
            0.296,
            72.996,
            91.086,
            13.557,
        ),
        (
            "shufflenet_v2_x2_0",
            "ShuffleNet_V2_X2_0_Weights.IMAGENET1K_V1",
            7393996,
            0.583,
            76.230,
            93.006,
            28.433,
        ),
        (
            "mobilenet_v2",
            "MobileNet_V2_Weights.IMAGENET1K_V1",
            3504872,
            0.301,
            71.878,
            90.286,
            13.555,
        ),
        (
            "mobilenet_v2",
            "MobileNet_V2_Weights.IMAGENET1K_V2",
            3504872,
            0.301,
            72.154,
            90.822,
            13.598,
        ),
        (
            "efficientnet_v2_s",
            "EfficientNet_V2_S_Weights.IMAGENET1K_V1",
            21458488,
            8.366,
            84.228,
            96.878,
            82.704,
        ),
        (
            "efficientnet_v2_m",
            "EfficientNet_V2_M_Weights.IMAGENET1K_V1",
            54139356,
            24.582,
            85.112,
            97.156,
            208.01,
        ),
        (
            "efficientnet_v2_l",
            "EfficientNet_V2_L_Weights.IMAGENET1K_V1",
            118515272,
            56.08,
            85.808,
            97.788,
            454.573,
        ),
    ),
    note=(
        "'model' is the torchvision builder. MobileNet_V2 IMAGENET1K_V2 is the default weights. "
        "Eval crops: 224 (ShuffleNet V2, MobileNetV2), 384 (EfficientNetV2-S), 480 (M, L)."
    ),
)

_TABLES: dict[str, _Ref] = {
    "shufflenet_v2.table1": _SNV2_TABLE1,
    "shufflenet_v2.table2": _SNV2_TABLE2,
    "shufflenet_v2.table3": _SNV2_TABLE3,
    "shufflenet_v2.table4": _SNV2_TABLE4,
    "shufflenet_v2.table5": _SNV2_TABLE5,
    "shufflenet_v2.table8": _SNV2_TABLE8,
    "shufflenet_v1.table1": _SNV1_TABLE1,
    "shufflenet_v1.table2": _SNV1_TABLE2,
    "shufflenet_v1.table3": _SNV1_TABLE3,
    "shufflenet_v1.table5": _SNV1_TABLE5,
    "shufflenet_v1.table8": _SNV1_TABLE8,
    "mobilenet_v2.table2": _MNV2_TABLE2,
    "mobilenet_v2.table4": _MNV2_TABLE4,
    "efficientnet_v2.table4": _ENV2_TABLE4,
    "efficientnet_v2.table6": _ENV2_TABLE6,
    "fasternet.table1": _FN_TABLE1,
    "fasternet.table3": _FN_TABLE3,
    "repvgg.table4": _REPVGG_TABLE4,
    "mobileone.table9": _MOBILEONE_TABLE9,
    "torchvision.metadata": _TV_METADATA,
}


def names() -> list[str]:
    """The names :func:`table` accepts, grouped by paper; chapters 4 to 13."""
    return list(_TABLES)


def table(name: str) -> Table:
    """A published table as a fresh :class:`Table`, its source in ``title``; chapters 4 to 13.

    Rows are dicts with the paper's numbers as ints and floats (``None`` where the paper prints
    none); the note holds the caveats recorded with the numbers. A name that is not a str raises
    ``TypeError``; an unknown name raises ``ValueError`` listing the known ones.
    """
    validate.text("name", name)
    validate.choice("name", name, _TABLES)
    return _TABLES[name].build()


def progressive_schedule(size: str = "S", stages: int = 4) -> Table:
    """EfficientNetV2's progressive learning: Table 6's settings per training stage; chapter 8.

    Each setting goes linearly from its "min" (first stage) to its "max" (last stage), as the
    paper's Algorithm 1 does. This interpolates published numbers; it measures nothing.
    """
    validate.text("size", size)
    validate.choice("size", size, ("S", "M", "L"))
    validate.integer("stages", stages, minimum=2)
    settings = {
        row["setting"]: (row[f"{size} min"], row[f"{size} max"])
        for row in table("efficientnet_v2.table6")
    }
    rows = []
    for i in range(stages):
        t = i / (stages - 1)
        row: dict[str, Any] = {"stage": i + 1}
        for name, (lo, hi) in settings.items():
            value = lo + (hi - lo) * t
            row[name] = round(value) if name in ("image size", "RandAugment") else round(value, 3)
        rows.append(row)
    return Table(
        rows,
        title=f"EfficientNetV2-{size} progressive learning, {stages} stages",
        note=_ENV2_TABLE6.source,
    )
