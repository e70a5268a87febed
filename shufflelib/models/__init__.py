"""The model zoo of the book: every network by name, and torchvision's ImageNet weights for it.

``build(name)`` makes a model, ``names()`` lists them, ``load_torchvision_weights(model, name)``
loads torchvision's ImageNet weights into ours (the names torchvision has share its state_dict
layout). Chapters 5 (ShuffleNet V1), 6 (MobileNetV2), 7 (ShuffleNet V2) and 8 (EfficientNetV2)
build their networks here; chapter 9 trains the small ones. The networks after 2018 (MobileNetV4,
chapters 10-11; FasterNet, chapter 12; RepVGG and MobileOne, chapter 13) have timm's state_dict
layout instead (``spec(name).timm`` names the timm model), and ``reparameterize`` folds RepVGG's
and MobileOne's branches into one convolution per block. Importing this module imports torch
only; torchvision is imported when weights are loaded.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from .. import net, validate
from ..layers import randomise_batchnorm
from .efficientnet_v2 import EfficientNetV2, efficientnet_v2
from .fasternet import FASTERNET_CONFIGS, FasterNet, fasternet
from .mobilenet_v2 import MobileNetV2, mobilenet_v2
from .mobilenet_v4 import MobileNetV4, mobilenet_v4
from .mobileone import MobileOne, mobileone
from .reparameterize import reparameterize
from .repvgg import RepVGG, repvgg
from .shufflenet_v1 import GROUPS, WIDTHS, ShuffleNetV1, shufflenet_v1
from .shufflenet_v2 import STAGES_OUT_CHANNELS, ShuffleNetV2, shufflenet_v2

__all__ = [
    "ModelSpec",
    "build",
    "names",
    "spec",
    "names_with_weights",
    "names_with_timm",
    "torchvision_pair",
    "timm_pair",
    "load_torchvision_weights",
    "ShuffleNetV1",
    "ShuffleNetV2",
    "MobileNetV2",
    "EfficientNetV2",
    "FasterNet",
    "RepVGG",
    "MobileOne",
    "MobileNetV4",
    "reparameterize",
]


@dataclass(frozen=True)
class ModelSpec:
    """A registry entry: how to build a named model and which torchvision weights it takes."""

    name: str
    builder: Callable[..., nn.Module]
    model_class: type[nn.Module]
    summary: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None  # torchvision's weights enum, e.g. "MobileNet_V2_Weights"
    timm: str | None = None  # the timm model with our state_dict layout and function, if any


def _tag(width: float) -> str:
    return "x" + str(float(width)).replace(".", "_")  # 0.25 -> x0_25, 1.0 -> x1_0


def _registry() -> dict[str, ModelSpec]:
    specs: list[ModelSpec] = []
    for g in GROUPS:
        for w in WIDTHS:
            specs.append(
                ModelSpec(
                    f"shufflenet_v1_g{g}_{_tag(w)}",
                    shufflenet_v1,
                    ShuffleNetV1,
                    f"ShuffleNet V1 {w}x, g={g} (chapter 5); accepts shuffle=False",
                    {"groups": g, "width_mult": w},
                )
            )
    for w in STAGES_OUT_CHANNELS:
        tag = _tag(w)
        specs.append(
            ModelSpec(
                f"shufflenet_v2_{tag}",
                shufflenet_v2,
                ShuffleNetV2,
                f"ShuffleNet V2 {w}x (chapter 7)",
                {"width_mult": w},
                f"ShuffleNet_V2_{tag.upper()}_Weights",
            )
        )
    specs.append(
        ModelSpec(
            "mobilenet_v2",
            mobilenet_v2,
            MobileNetV2,
            "MobileNetV2 (chapter 6); accepts width_mult= (weights exist for 1.0 only)",
            {},
            "MobileNet_V2_Weights",
        )
    )
    for v in "sml":
        specs.append(
            ModelSpec(
                f"efficientnet_v2_{v}",
                efficientnet_v2,
                EfficientNetV2,
                f"EfficientNetV2-{v.upper()} (chapter 8)",
                {"variant": v},
                f"EfficientNet_V2_{v.upper()}_Weights",
            )
        )
    specs.append(
        ModelSpec(
            "efficientnet_v2_t",
            efficientnet_v2,
            EfficientNetV2,
            "EfficientNetV2-T, our tiny variant (about 2M parameters) that trains on 32x32 images "
            "on two CPU cores in minutes with small_input=True (chapters 8, 9)",
            {"variant": "t"},
        )
    )
    return {s.name: s for s in specs + _since_2021()}


def _since_2021() -> list[ModelSpec]:
    """The networks after 2018; each shares its name and state_dict layout with a timm model."""
    specs = [
        ModelSpec(
            f"fasternet_{v}",
            fasternet,
            FasterNet,
            f"FasterNet-{v.upper()}, partial convolution (chapter 12)",
            {"variant": v},
            timm=f"fasternet_{v}",
        )
        for v in FASTERNET_CONFIGS
    ]
    for name, builder, cls, summary, variant in [
        ("repvgg_a0", repvgg, RepVGG, "RepVGG-A0, re-parameterised 3x3 (chapter 13)", "a0"),
        ("mobileone_s0", mobileone, MobileOne, "MobileOne-S0, k=4 branches (chapter 13)", "s0"),
        (
            "mobilenetv4_conv_small",
            mobilenet_v4,
            MobileNetV4,
            "MobileNetV4-Conv-S, universal inverted bottleneck (chapters 10-11)",
            "conv_small",
        ),
    ]:
        specs.append(ModelSpec(name, builder, cls, summary, {"variant": variant}, timm=name))
    return specs


_REGISTRY = _registry()


def names() -> list[str]:
    """Every model name ``build`` accepts, family by family; chapters 5-13."""
    return list(_REGISTRY)


def names_with_timm() -> list[str]:
    """The names with timm's state_dict layout and function (``spec(name).timm``); ch. 10-13."""
    return [n for n, s in _REGISTRY.items() if s.timm is not None]


def names_with_weights() -> list[str]:
    """The names with torchvision ImageNet weights (and its state_dict layout); chapters 6-8."""
    return [n for n, s in _REGISTRY.items() if s.weights is not None]


def spec(name: str) -> ModelSpec:
    """The registry entry for ``name``: builder, class, summary, weights; chapters 5-13."""
    validate.text("name", name)
    if name not in _REGISTRY:
        raise ValueError(f"unknown model name {name!r}; valid names: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def build(name: str, num_classes: int = 1000, small_input: bool = False, **kw: Any) -> nn.Module:
    """Build the model called ``name`` (see :func:`names`) with fresh weights; chapters 5-13.

    ``small_input=True`` adapts the stem to 32x32 images (CIFAR-10): the stem convolution runs at
    stride 1 instead of 2, and the ShuffleNets also drop their stride-2 max-pool. A 32x32 image
    then reaches the last stage at 4x4 (ShuffleNets: 8x downsampling instead of 32x) or 2x2
    (MobileNetV2, EfficientNetV2: 16x instead of 32x) instead of 1x1. Strides have no
    parameters, so the state_dict is the same and ImageNet weights still load. (FasterNet runs
    its 4x4 stride-4 embedding at stride 1 and reaches the last stage at 4x4; RepVGG, MobileOne
    and MobileNetV4 run their stem at stride 1 and reach it at 2x2.) Other keyword arguments go
    to the family's class (e.g. ``width_mult`` for ``mobilenet_v2``, ``shuffle`` for ShuffleNet
    V1, ``stochastic_depth_prob`` for EfficientNetV2, ``drop_path_rate`` for FasterNet).
    """
    s = spec(name)
    validate.integer("num_classes", num_classes, minimum=1)
    validate.flag("small_input", small_input)
    fixed = sorted(set(kw) & set(s.kwargs))
    if fixed:
        raise TypeError(
            f"{name!r} fixes {', '.join(f'{k}={s.kwargs[k]!r}' for k in fixed)}; pick another "
            f"name instead of passing {', '.join(fixed)}"
        )
    return s.builder(num_classes=num_classes, small_input=small_input, **s.kwargs, **kw)


def torchvision_pair(
    name: str, *, num_classes: int = 1000, seed: int = 0, random_batchnorm: bool = True
) -> tuple[nn.Module, nn.Module]:
    """(ours, torchvision's) ``name`` with the same random weights, both in eval mode; ch. 6-11.

    torchvision's model is built without pretrained weights after ``torch.manual_seed(seed)``;
    with ``random_batchnorm`` its BatchNorm scales, shifts and running statistics are randomised
    too (see :func:`shufflelib.layers.randomise_batchnorm`), so every layer changes the output.
    Ours loads its state_dict with ``strict=True``: the two compute the same function, and a
    benchmark or a deployment step can compare them as they are.
    """
    _check_pair(name, "torchvision", num_classes, seed, random_batchnorm)

    import torchvision.models as tvm  # here, not at import time: only this function needs it

    torch.manual_seed(seed)
    theirs = tvm.get_model(name, weights=None, num_classes=num_classes)
    return _loaded_pair(name, theirs, num_classes, seed, random_batchnorm)


def timm_pair(
    name: str, *, num_classes: int = 1000, seed: int = 0, random_batchnorm: bool = True
) -> tuple[nn.Module, nn.Module]:
    """(ours, timm's) ``name`` with the same random weights, both in eval mode; chapter 11.

    timm is the reference implementation of the networks since 2021 (:func:`names_with_timm`),
    as torchvision is of the older ones (:func:`torchvision_pair`, which this mirrors). timm's
    model is built with ``pretrained=False`` (nothing is downloaded) after
    ``torch.manual_seed(seed)``, its BatchNorms randomised with ``random_batchnorm``, and ours
    loads its state_dict with ``strict=True``.
    """
    _check_pair(name, "timm", num_classes, seed, random_batchnorm)
    try:
        with warnings.catch_warnings():  # tqdm's notice, in a notebook without ipywidgets
            warnings.filterwarnings("ignore", message="IProgress not found")
            import timm  # here, not at import time: only this function needs it
    except ImportError as e:  # a requirement, but a notebook may run where it is missing
        raise ImportError("timm_pair needs timm: pip install timm") from e
    torch.manual_seed(seed)
    theirs = timm.create_model(spec(name).timm, pretrained=False, num_classes=num_classes)
    return _loaded_pair(name, theirs, num_classes, seed, random_batchnorm)


def _check_pair(
    name: str, library: str, num_classes: object, seed: object, random_batchnorm: object
) -> None:
    """The arguments of :func:`torchvision_pair` and :func:`timm_pair`, checked before work."""
    counterpart = spec(name).weights if library == "torchvision" else spec(name).timm
    if counterpart is None:
        with_one = names_with_weights() if library == "torchvision" else names_with_timm()
        raise ValueError(
            f"{name!r} has no {library} counterpart; the models with one are {', '.join(with_one)}"
        )
    validate.integer("num_classes", num_classes, minimum=1)
    validate.integer("seed", seed, minimum=0)
    validate.flag("random_batchnorm", random_batchnorm)


def _loaded_pair(
    name: str, theirs: nn.Module, num_classes: int, seed: int, random_batchnorm: bool
) -> tuple[nn.Module, nn.Module]:
    """Ours built for ``name``, loaded strictly with ``theirs``'s weights (BatchNorm randomised
    first with ``random_batchnorm``); both in eval mode."""
    if random_batchnorm:
        randomise_batchnorm(theirs, seed)
    ours = build(name, num_classes=num_classes)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours.eval(), theirs.eval()


# ---------------------------------------------------------------------------------------------
# torchvision's ImageNet weights

_STALL_TIMEOUT = 30.0  # seconds without a byte before a started download gives up


def _how_to_get(weights: Any, cached: str) -> str:
    return (
        f"To get the weights, either run once on a machine with internet (Google Colab, a "
        f"laptop): the file is saved to {cached}, and copying that file to the same place here "
        f"makes later loads work offline; or download {weights.url} yourself and pass "
        f"path='<that file>' (any state_dict saved with torch.save works)."
    )


def _check_layout(model: nn.Module, name: str, torchvision_models: Any) -> None:
    # Compare key names and shapes with torchvision's model built on the meta device (no memory,
    # no init), so a mismatch is reported before anything is downloaded.
    with torch.device("meta"):
        reference = torchvision_models.get_model(name, weights=None)
    want = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
    wrong = [k for k in want if k in have and want[k] != have[k]]
    if missing or extra or wrong:
        detail = "; ".join(
            part
            for part in (
                f"missing keys {missing[:3]}" if missing else "",
                f"unexpected keys {extra[:3]}" if extra else "",
                ", ".join(f"{k}: ours {have[k]} vs {want[k]}" for k in wrong[:3]),
            )
            if part
        )
        raise ValueError(
            f"this model does not have torchvision's {name!r} layout ({detail}). Build it with "
            f"build({name!r}) and the defaults (num_classes=1000, width_mult=1.0); to fine-tune "
            f"on other classes, load the weights first, then replace the classifier"
        )


def load_torchvision_weights(
    model: nn.Module,
    name: str,
    *,
    weights: str = "IMAGENET1K_V1",
    path: str | os.PathLike[str] | None = None,
    timeout: float = 3.0,
    progress: bool = False,
) -> nn.Module:
    """Load torchvision's ImageNet weights for ``name`` into our ``model``; chapters 6-8.

    The weights are torchvision's (``<Model>_Weights.IMAGENET1K_V1`` unless ``weights`` names
    another entry), kept where torch hub keeps them (``torch.hub.get_dir()/checkpoints``): a file
    already there loads without the network. Otherwise the weights host (or the HTTPS proxy) must
    answer within ``timeout`` seconds, and :func:`shufflelib.net.download` fetches the file,
    checked against the SHA-256 prefix in its name (as torch hub checks it); a download that
    stalls for 30 s gives up. Either failure is a RuntimeError saying how to get the file (Colab,
    or ``path=`` to a local state_dict). ``small_input`` models take the same weights. Returns
    ``model``, loaded with ``strict=True``.
    """
    s = spec(name)
    if s.weights is None:
        raise ValueError(
            f"{name!r} has no torchvision counterpart, so there are no ImageNet weights for it; "
            f"the models with weights are {', '.join(names_with_weights())}"
        )
    validate.instance("model", model, s.model_class)
    timeout = validate.number("timeout", timeout, above=0)
    validate.flag("progress", progress)
    if path is None:
        path = _hub_file(model, name, weights, timeout, progress)
    state_dict = torch.load(validate.path("path", path), map_location="cpu", weights_only=True)
    model.load_state_dict(state_dict, strict=True)
    return model


def _hub_file(model: nn.Module, name: str, weights: str, timeout: float, progress: bool) -> str:
    """torch hub's cached file of torchvision's ``weights`` for ``name``, downloaded if missing."""
    import torchvision.models as tvm  # here, not at import time: only loading weights needs it

    enum = tvm.get_model_weights(name)
    entry = enum[validate.choice("weights", weights, list(enum.__members__))]
    _check_layout(model, name, tvm)
    filename = os.path.basename(urlparse(entry.url).path)
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", filename)
    if os.path.exists(cached):
        return cached  # as torch hub: a file in its cache is used as it is
    reason = net.unreachable(entry.url, timeout)
    if reason is not None:
        raise net.Unavailable(
            f"could not download torchvision's weights {entry} for {name!r} from {entry.url}: "
            f"{reason}. This machine seems to have no internet access. "
            + _how_to_get(entry, cached)
        )
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    sha256 = torch.hub.HASH_REGEX.search(filename).group(1)  # every torchvision file has one
    try:
        net.download(entry.url, cached, sha256=sha256, timeout=_STALL_TIMEOUT, progress=progress)
    except RuntimeError as e:
        raise net.Unavailable(f"{e}. " + _how_to_get(entry, cached)) from e
    return cached
