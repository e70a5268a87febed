"""The model zoo of the book: every network by name, and torchvision's ImageNet weights for it.

``build(name)`` makes a model, ``names()`` lists them, ``load_torchvision_weights(model, name)``
loads torchvision's ImageNet weights into ours (the names torchvision has share its state_dict
layout). Chapters 5 (ShuffleNet V1), 6 (MobileNetV2), 7 (ShuffleNet V2) and 8 (EfficientNetV2)
build their networks here; chapter 9 trains the small ones. Importing this module imports torch
only; torchvision is imported when weights are loaded.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from ..layers import randomise_batchnorm
from .efficientnet_v2 import EfficientNetV2, efficientnet_v2
from .mobilenet_v2 import MobileNetV2, mobilenet_v2
from .shufflenet_v1 import GROUPS, WIDTHS, ShuffleNetV1, shufflenet_v1
from .shufflenet_v2 import STAGES_OUT_CHANNELS, ShuffleNetV2, shufflenet_v2

__all__ = [
    "ModelSpec",
    "build",
    "names",
    "spec",
    "names_with_weights",
    "load_torchvision_weights",
    "ShuffleNetV1",
    "ShuffleNetV2",
    "MobileNetV2",
    "EfficientNetV2",
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
                    {"groups": g, "width": w},
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
                {"width": w},
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
    return {s.name: s for s in specs}


_REGISTRY = _registry()


def names() -> list[str]:
    """Every model name ``build`` accepts, family by family; chapters 5-9."""
    return list(_REGISTRY)


def names_with_weights() -> list[str]:
    """The names with torchvision ImageNet weights (and its state_dict layout); chapters 6-8."""
    return [n for n, s in _REGISTRY.items() if s.weights is not None]


def spec(name: str) -> ModelSpec:
    """The registry entry for ``name``: builder, class, summary, weights; chapters 5-9."""
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"unknown model name {name!r}; valid names: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def build(name: str, num_classes: int = 1000, small_input: bool = False, **kw: Any) -> nn.Module:
    """Build the model called ``name`` (see :func:`names`) with fresh weights; chapters 5-9.

    ``small_input=True`` adapts the stem to 32x32 images (CIFAR-10): the stem convolution runs at
    stride 1 instead of 2, and the ShuffleNets also drop their stride-2 max-pool. A 32x32 image
    then reaches the last stage at 4x4 (ShuffleNets: 8x downsampling instead of 32x) or 2x2
    (MobileNetV2, EfficientNetV2: 16x instead of 32x) instead of 1x1. Strides have no
    parameters, so the state_dict is the same and ImageNet weights still load. Other keyword
    arguments go to the family's class (e.g. ``width_mult`` for ``mobilenet_v2``, ``shuffle``
    for ShuffleNet V1, ``stochastic_depth_prob`` for EfficientNetV2).
    """
    s = spec(name)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    if not isinstance(small_input, bool):
        raise TypeError(f"small_input must be a bool, got {small_input!r}")
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
    s = spec(name)
    if s.weights is None:
        raise ValueError(
            f"{name!r} has no torchvision counterpart; the models with one are "
            f"{', '.join(names_with_weights())}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    if not isinstance(random_batchnorm, bool):
        raise TypeError(f"random_batchnorm must be True or False, got {random_batchnorm!r}")
    ours = build(name, num_classes=num_classes)  # checks num_classes before torchvision builds

    import torchvision.models as tvm  # here, not at import time: only this function needs it

    torch.manual_seed(seed)
    theirs = tvm.get_model(name, weights=None, num_classes=num_classes)
    if random_batchnorm:
        randomise_batchnorm(theirs, seed)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours.eval(), theirs.eval()


# ---------------------------------------------------------------------------------------------
# torchvision's ImageNet weights

_STALL_TIMEOUT = 30.0  # seconds without a byte before a started download gives up


def _probe(host: str, port: int, timeout: float) -> str | None:
    """None if a TCP connection to ``host:port`` opens within ``timeout`` s, else the reason."""
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as e:  # gaierror (no DNS), timeout, unreachable, refused
            outcome.append(f"{type(e).__name__}: {e}")

    # A thread bounds the DNS lookup too, which the socket timeout does not cover.
    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        return f"no answer within {timeout:g} s"
    return outcome[0]


def _probe_target(url: str) -> tuple[str, int]:
    # Downloads go through an HTTPS proxy when one is configured; then the proxy must answer.
    import urllib.request  # only when weights are loaded

    proxy = urllib.request.getproxies().get("https")
    parsed = urlparse(proxy if proxy else url)
    return parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80)


def _offline_help(name: str, weights: Any, cached: str, reason: str) -> str:
    return (
        f"could not download torchvision's weights {weights} for {name!r} from {weights.url}: "
        f"{reason}. This machine seems to have no internet access. To get the weights, either "
        f"run once on a machine with internet (Google Colab, a laptop): torchvision saves the "
        f"file to {cached}, and copying that file to the same place here makes later loads work "
        f"offline; or download {weights.url} yourself and pass path='<that file>' (any "
        f"state_dict saved with torch.save works)."
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

    The weights come from torchvision's weights API (``<Model>_Weights.IMAGENET1K_V1`` unless
    ``weights`` names another entry), through the torch hub cache: a file already there loads
    without the network. Otherwise the weights host (or the HTTPS proxy) must answer within
    ``timeout`` seconds, and a download that stalls for 30 s gives up; either way a RuntimeError
    says what failed and how to get the file (Colab, or ``path=`` to a local state_dict).
    ``small_input`` models take the same weights. Returns ``model``, loaded with ``strict=True``.
    """
    s = spec(name)
    if s.weights is None:
        raise ValueError(
            f"{name!r} has no torchvision counterpart, so there are no ImageNet weights for it; "
            f"the models with weights are {', '.join(names_with_weights())}"
        )
    if not isinstance(model, s.model_class):
        raise TypeError(
            f"model must be a {s.model_class.__name__} built with build({name!r}), "
            f"got {type(model).__name__}"
        )
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if path is not None:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state_dict, strict=True)
        return model

    import torchvision.models as tvm  # here, not at import time: only this function needs it

    enum = tvm.get_model_weights(name)
    if weights not in enum.__members__:
        raise ValueError(
            f"weights must be one of {list(enum.__members__)} for {name!r}, got {weights!r}"
        )
    entry = enum[weights]
    _check_layout(model, name, tvm)
    cached = os.path.join(
        torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(entry.url).path)
    )
    if not os.path.exists(cached):
        host, port = _probe_target(entry.url)
        reason = _probe(host, port, float(timeout))
        if reason is not None:
            raise RuntimeError(
                _offline_help(name, entry, cached, f"cannot reach {host}:{port} ({reason})")
            )
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_STALL_TIMEOUT)  # urllib has no timeout of its own
    try:
        state_dict = entry.get_state_dict(progress=progress, check_hash=True)
    except OSError as e:  # URLError, timeouts, resets are all OSErrors
        raise RuntimeError(_offline_help(name, entry, cached, f"{type(e).__name__}: {e}")) from e
    finally:
        socket.setdefaulttimeout(previous)
    model.load_state_dict(state_dict, strict=True)
    return model
