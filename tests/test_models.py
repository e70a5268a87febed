import hashlib
import inspect
import os
import socket
import threading

import pytest
import torch
import torchvision
from torch import nn

import shufflelib.models as zoo
from shufflelib import net
from shufflelib.cost import count_params, madds
from shufflelib.layers import DropPath, SqueezeExcite, randomise_batchnorm
from shufflelib.models.efficientnet_v2 import (
    EFFICIENTNET_V2_S,
    EfficientNetV2,
    FusedMBConv,
    MBConv,
    StageConfig,
    efficientnet_v2,
)
from shufflelib.models.mobilenet_v2 import (
    INVERTED_RESIDUAL_SETTING,
    InvertedResidual,
    MobileNetV2,
    mobilenet_v2,
)
from shufflelib.models.shufflenet_v1 import (
    ShuffleNetV1,
    ShuffleV1Unit,
    shufflenet_v1,
    shufflenet_v1_channels,
)
from shufflelib.models.shufflenet_v2 import (
    ShuffleNetV2,
    ShuffleV2Unit,
    concat_shuffle,
    shufflenet_v2,
)
from shufflelib.ops import channel_shuffle

pytestmark = pytest.mark.usefixtures("one_thread")


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def zero_last_bn(block):
    """Make a block's residual branch output exactly zero (gamma = beta = 0 in its last BN)."""
    bn = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)][-1]
    nn.init.zeros_(bn.weight)
    nn.init.zeros_(bn.bias)
    return block.eval()


def on_meta(name, **kw):
    # Shapes, parameter counts and MAdds need no memory and no arithmetic: build on the meta
    # device (cost.madds runs the forward there too).
    with torch.device("meta"):
        return zoo.build(name, **kw)


# ShuffleNet V2 unit


def test_concat_shuffle_equals_cat_then_channel_shuffle():
    a, b = rand(2, 6, 3, 4, seed=1), rand(2, 6, 3, 4, seed=2)
    out = concat_shuffle(a, b)
    assert torch.equal(out, channel_shuffle(torch.cat((a, b), 1), 2))
    assert torch.equal(out[:, 0::2], a) and torch.equal(out[:, 1::2], b)
    assert out.is_contiguous()


@pytest.mark.parametrize(("c_in", "c_out", "stride"), [(58, 58, 1), (24, 58, 2), (116, 232, 2)])
def test_shuffle_v2_unit_equals_literal_cat_then_shuffle(c_in, c_out, stride):
    unit = randomise_batchnorm(ShuffleV2Unit(c_in, c_out, stride)).eval()
    x = rand(2, c_in, 8, 8)
    out = unit(x)
    assert out.shape == (2, c_out, 8 // stride, 8 // stride)
    assert torch.equal(out, unit.forward_literal(x))


def test_shuffle_v2_unit_stride1_passes_first_half_unchanged():
    unit = randomise_batchnorm(ShuffleV2Unit(16, 16, 1)).eval()
    x = rand(2, 16, 5, 5)
    out = unit(x)
    # After the shuffle the identity half sits on the even channels.
    assert torch.equal(out[:, 0::2], x[:, :8])
    assert len(unit.branch1) == 0  # no branch1 at stride 1 (and no keys: torchvision's layout)
    assert [type(m).__name__ for m in unit.branch2] == [
        "Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "Conv2d", "BatchNorm2d", "ReLU",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((24, 58, 3), ["stride", "3"]),
        ((24, 58, 0), ["stride", "0"]),
        ((58, 116, 1), ["58", "116"]),
        ((24, 57, 2), ["even", "57"]),
    ],
)
def test_shuffle_v2_unit_bad_arguments(args, words):
    with pytest.raises(ValueError) as err:
        ShuffleV2Unit(*args)
    assert all(w in str(err.value) for w in words)


# ShuffleNet V1 unit


def test_shuffle_v1_unit_stride2_concatenates_pooled_input():
    unit = randomise_batchnorm(ShuffleV1Unit(240, 480, 2, 3)).eval()
    x = rand(2, 240, 8, 8).relu()
    out = unit(x)
    assert out.shape == (2, 480, 4, 4)
    assert unit.gconv2[0].out_channels == 240  # the branch makes out - in channels
    assert torch.allclose(out[:, :240], nn.functional.avg_pool2d(x, 3, 2, 1))
    assert (out >= 0).all()  # ReLU after the concatenation


def test_shuffle_v1_unit_stride1_adds_input():
    unit = zero_last_bn(ShuffleV1Unit(120, 120, 1, 3))
    x = rand(2, 120, 6, 6)
    assert torch.equal(unit(x), x.relu())  # a zero branch leaves ReLU(x + 0)
    shapes = [unit.gconv1[0].weight.shape, unit.dwconv[0].weight.shape, unit.gconv2[0].weight.shape]
    assert shapes == [(30, 40, 1, 1), (30, 1, 3, 3), (120, 10, 1, 1)]  # bottleneck 120 / 4
    assert len(unit.dwconv) == 2  # no ReLU after the depthwise convolution


def test_shuffle_v1_unit_shuffle_switch():
    a = randomise_batchnorm(ShuffleV1Unit(96, 96, 1, 8)).eval()
    b = randomise_batchnorm(ShuffleV1Unit(96, 96, 1, 8, shuffle=False)).eval()
    b.load_state_dict(a.state_dict())
    x = rand(2, 96, 4, 4)
    assert a.shuffle and not b.shuffle
    assert (a(x) - b(x)).abs().max() > 1e-3  # same weights, different information flow
    first = ShuffleV1Unit(24, 240, 2, 3, grouped_first=False)
    assert (
        first.gconv1[0].groups == 1 and not first.shuffle
    )  # nothing to shuffle after a dense conv


@pytest.mark.parametrize(
    ("args", "kw", "words"),
    [
        ((240, 480, 3, 3), {}, ["stride", "3"]),
        ((24, 200, 2, 3), {"grouped_first": False}, ["50", "groups=3"]),  # bottleneck 200/4 = 50
        ((12, 192, 2, 8), {"grouped_first": False}, ["180", "groups=8"]),  # branch 192 - 12
        ((240, 240, 1, 7), {}, ["240", "groups=7"]),
        ((120, 240, 1, 3), {}, ["120", "240"]),
        ((240, 240, 2, 3), {}, ["exceed", "240"]),
        ((240, 482, 2, 1), {}, ["482", "4"]),
    ],
)
def test_shuffle_v1_unit_bad_arguments(args, kw, words):
    with pytest.raises(ValueError) as err:
        ShuffleV1Unit(*args, **kw)
    assert all(w in str(err.value) for w in words), str(err.value)


# MobileNetV2 and EfficientNetV2 blocks


@pytest.mark.parametrize(
    ("c_in", "c_out", "stride", "t", "skip"),
    [(16, 16, 1, 6, True), (16, 24, 1, 6, False), (24, 24, 2, 6, False), (32, 32, 1, 1, True)],
)
def test_inverted_residual_skip_and_shapes(c_in, c_out, stride, t, skip):
    block = InvertedResidual(c_in, c_out, stride, t)
    assert block.has_skip is skip
    zero_last_bn(block)
    x = rand(2, c_in, 8, 8)
    out = block(x)
    assert out.shape == (2, c_out, 8 // stride, 8 // stride)
    # The projection is zero, so the output is the skip (x) or nothing.
    assert torch.equal(out, x if skip else torch.zeros_like(out))
    assert len(block.conv) == (3 if t == 1 else 4)  # no expansion conv when t == 1
    assert block.conv[-2].weight.shape == (c_out, c_in * t, 1, 1)  # linear bottleneck


def test_inverted_residual_is_linear_at_the_end():
    block = InvertedResidual(8, 8, 1, 6)
    assert not any(isinstance(m, nn.ReLU6) for m in block.conv[2:])
    assert [isinstance(m[-1], nn.ReLU6) for m in block.conv[:2]] == [True, True]


@pytest.mark.parametrize("cls", [MBConv, FusedMBConv])
@pytest.mark.parametrize(
    ("c_in", "c_out", "stride", "skip"),
    [(24, 24, 1, True), (24, 48, 1, False), (48, 48, 2, False), (48, 64, 2, False)],
)
def test_mbconv_skip_and_shapes(cls, c_in, c_out, stride, skip):
    block = cls(c_in, c_out, stride=stride, expand_ratio=4)
    assert block.has_skip is skip
    zero_last_bn(block)
    x = rand(2, c_in, 8, 8)
    out = block(x)
    assert out.shape == (2, c_out, 8 // stride, 8 // stride)
    assert torch.equal(out, x if skip else torch.zeros_like(out))


def test_mbconv_layout():
    mb = MBConv(64, 128, stride=2, expand_ratio=4)
    se = mb.block[2]
    assert isinstance(se, SqueezeExcite) and (se.in_channels, se.squeeze_channels) == (256, 16)
    assert mb.block[1][0].groups == 256 and mb.block[1][0].stride == (2, 2)  # depthwise
    assert len(mb.block[3]) == 2  # linear projection
    fused = FusedMBConv(24, 48, stride=2, expand_ratio=4)
    assert [m[0].kernel_size for m in fused.block] == [(3, 3), (1, 1)]
    assert fused.block[0][0].stride == (2, 2)
    single = FusedMBConv(24, 24, expand_ratio=1)
    assert len(single.block) == 1 and isinstance(single.block[0][-1], nn.SiLU)


def test_mbconv_drop_path_drops_the_branch_in_training():
    block = FusedMBConv(16, 16, expand_ratio=4, drop_path=1.0).train()
    x = rand(4, 16, 6, 6)
    assert torch.equal(block(x), x)  # the branch is always dropped: identity
    assert isinstance(block.stochastic_depth, DropPath)


@pytest.mark.parametrize(
    "make",
    [
        lambda: MBConv(16, 16, stride=3),
        lambda: FusedMBConv(16, 16, stride=0),
        lambda: InvertedResidual(16, 16, 3, 6),
        lambda: StageConfig("mbconv", 4, 3, 4, 16, 32, 2),
    ],
)
def test_blocks_refuse_strides_other_than_1_and_2(make):
    with pytest.raises(ValueError, match="stride must be an int >= 1 and <= 2"):
        make()


def test_stage_config_checks():
    with pytest.raises(ValueError, match="'dense'"):
        StageConfig("dense", 4, 3, 1, 16, 32, 2)
    with pytest.raises(ValueError, match="kernel must be odd"):
        StageConfig("fused", 4, 4, 1, 16, 32, 2)
    bad = (StageConfig("fused", 1, 3, 1, 24, 24, 1), StageConfig("fused", 4, 3, 2, 32, 48, 1))
    with pytest.raises(ValueError, match="24 channels but the next starts with 32"):
        EfficientNetV2(bad)


def test_efficientnet_v2_stochastic_depth_rises_linearly():
    model = on_meta("efficientnet_v2_s")
    probs = [b.stochastic_depth.p for stage in model.features[1:-1] for b in stage]
    assert len(probs) == sum(s.num_layers for s in EFFICIENTNET_V2_S) == 40
    assert probs == pytest.approx([0.2 * i / 40 for i in range(40)])
    with torch.device("meta"):
        tv = torchvision.models.efficientnet_v2_s()
    tv_probs = [b.stochastic_depth.p for stage in tv.features[1:-1] for b in stage]
    assert probs == pytest.approx(tv_probs)


# torchvision equality: same state_dict keys, same outputs

TORCHVISION_NAMES = [
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5",
    "shufflenet_v2_x2_0",
    "mobilenet_v2",
    "efficientnet_v2_s",
    "efficientnet_v2_m",
    "efficientnet_v2_l",
]


@pytest.mark.parametrize("name", TORCHVISION_NAMES)
def test_torchvision_weights_give_the_same_outputs(name):
    torch.manual_seed(0)
    tv = randomise_batchnorm(torchvision.models.get_model(name, weights=None)).eval()
    ours = zoo.build(name).eval()
    assert list(ours.state_dict()) == list(tv.state_dict())  # same keys, same order
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = rand(2, 3, 64, 64, seed=1)
    with torch.inference_mode():
        want, got = tv(x), ours(x)
    assert got.shape == (2, 1000)
    assert want.abs().max() > 0.05  # a real signal, not a row of zeros
    assert (got - want).abs().max() < 1e-5


def test_torchvision_pair_computes_one_function_with_random_batchnorm():
    ours, theirs = zoo.torchvision_pair("shufflenet_v2_x0_5", num_classes=10, seed=3)
    assert not ours.training and not theirs.training
    assert isinstance(theirs, torchvision.models.ShuffleNetV2) and ours.fc.out_features == 10
    bn = theirs.conv1[1]
    assert bn.running_var.min() != 1 and bn.weight.min() != 1  # statistics were randomised
    x = rand(2, 3, 64, 64, seed=1)
    with torch.inference_mode():
        assert (ours(x) - theirs(x)).abs().max() < 1e-5
    again, _ = zoo.torchvision_pair("shufflenet_v2_x0_5", num_classes=10, seed=3)
    assert torch.equal(again.fc.weight, ours.fc.weight)  # seeded
    fresh, _ = zoo.torchvision_pair("mobilenet_v2", random_batchnorm=False)
    assert torch.all(fresh.features[0][1].running_var == 1)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"name": "efficientnet_v2_t"}, ValueError, "no torchvision counterpart"),
        ({"name": "resnet50"}, ValueError, "unknown model name"),
        ({"name": "mobilenet_v2", "seed": -1}, ValueError, "seed must be an int >= 0"),
        ({"name": "mobilenet_v2", "num_classes": 0}, ValueError, "num_classes must be"),
        ({"name": "mobilenet_v2", "random_batchnorm": 1}, TypeError, "random_batchnorm must be"),
    ],
)
def test_torchvision_pair_rejects_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        zoo.torchvision_pair(**kwargs)


def test_small_input_models_take_the_same_weights():
    tv = torchvision.models.shufflenet_v2_x0_5()
    ours = zoo.build("shufflenet_v2_x0_5", small_input=True)
    ours.load_state_dict(tv.state_dict(), strict=True)
    assert ours.conv1[0].stride == (1, 1) and isinstance(ours.maxpool, nn.Identity)


# Paper numbers: multiply-adds at 224x224 (the papers' "FLOPs") and parameter counts

# ShuffleNet V1, Table 1 (1x, ~140 MFLOPs, per g) and Table 8 / Table 5 (g = 3 at 0.5x, 2x).
V1_PAPER = [
    (1, 1.0, 143, 0.02),
    (2, 1.0, 140, 0.02),
    (3, 1.0, 137, 0.02),
    (4, 1.0, 133, 0.02),
    (8, 1.0, 137, 0.02),
    (3, 0.5, 38, 0.05),
    (3, 2.0, 524, 0.05),
    (3, 1.5, 292, 0.02),
]


@pytest.mark.parametrize(("g", "width", "paper", "tol"), V1_PAPER)
def test_shufflenet_v1_madds_match_the_paper(g, width, paper, tol):
    name = f"shufflenet_v1_g{g}_x{str(width).replace('.', '_')}"
    ours = madds(on_meta(name), (1, 3, 224, 224)) / 1e6
    assert ours == pytest.approx(paper, rel=tol)


# megvii-model/ShuffleNet-Series ShuffleNetV1: widths in network.py, parameter totals counted
# from that code.
MEGVII_V1 = {
    (3, 0.5): ([12, 120, 240, 480], 717_324),
    (3, 1.0): ([24, 240, 480, 960], 1_864_728),
    (3, 1.5): ([24, 360, 720, 1440], 3_441_168),
    (3, 2.0): ([48, 480, 960, 1920], 5_449_776),
    (8, 0.5): ([16, 192, 384, 768], 1_010_448),
    (8, 1.0): ([24, 384, 768, 1536], 2_433_768),
    (8, 1.5): ([24, 576, 1152, 2304], 4_268_952),
    (8, 2.0): ([48, 768, 1536, 3072], 6_521_232),
}


@pytest.mark.parametrize(("g", "width"), list(MEGVII_V1))
def test_shufflenet_v1_widths_and_params_match_megvii(g, width):
    channels, params = MEGVII_V1[(g, width)]
    assert shufflenet_v1_channels(width, groups=g) == channels
    with torch.device("meta"):
        assert count_params(shufflenet_v1(width, groups=g)) == params


def test_shufflenet_v1_channels_every_name_is_valid():
    for name in zoo.names():
        if name.startswith("shufflenet_v1"):
            model = on_meta(name)
            g = model.groups
            for c in model.stages_out_channels[1:]:
                assert c % (4 * g) == 0
            assert (model.stages_out_channels[1] - model.stages_out_channels[0]) % g == 0
    assert shufflenet_v1_channels(0.25, groups=2) == [12, 48, 104, 200]  # 50 -> 48, 100 -> 104


# ShuffleNet V2: Table 5 FLOPs and torchvision's published num_params.
V2_PAPER = {
    "shufflenet_v2_x0_5": (41, 1_366_792),
    "shufflenet_v2_x1_0": (146, 2_278_604),
    "shufflenet_v2_x1_5": (299, 3_503_624),
    "shufflenet_v2_x2_0": (591, 7_393_996),
}


@pytest.mark.parametrize("name", list(V2_PAPER))
def test_shufflenet_v2_madds_and_params(name):
    paper_madds, params = V2_PAPER[name]
    model = on_meta(name)
    assert madds(model, (1, 3, 224, 224)) / 1e6 == pytest.approx(paper_madds, rel=0.03)
    assert count_params(model) == params
    enum = torchvision.models.get_model_weights(name)
    assert enum.IMAGENET1K_V1.meta["num_params"] == params


def test_madds_on_meta_equal_madds_on_cpu():
    cpu = zoo.build("shufflenet_v2_x0_5")
    assert madds(cpu, (1, 3, 224, 224)) == madds(on_meta("shufflenet_v2_x0_5"), (1, 3, 224, 224))


def test_mobilenet_v2_madds_and_params():
    model = on_meta("mobilenet_v2")
    assert count_params(model) == 3_504_872
    assert madds(model, (1, 3, 224, 224)) / 1e6 == pytest.approx(300, rel=0.03)
    assert INVERTED_RESIDUAL_SETTING[0] == [1, 16, 1, 1] and len(INVERTED_RESIDUAL_SETTING) == 7


def test_mobilenet_v2_width_mult():
    model = on_meta("mobilenet_v2", width_mult=0.5)
    assert model.features[0][0].out_channels == 16
    assert model.last_channel == 1280  # not shrunk below 1 (Sec. 6.1)
    wide = on_meta("mobilenet_v2", width_mult=1.4)
    assert wide.last_channel == 1792
    assert all(m.out_channels % 8 == 0 for m in wide.modules() if isinstance(m, nn.Conv2d))
    assert madds(wide, (1, 3, 224, 224)) / 1e6 == pytest.approx(585, rel=0.03)  # Table 4


@pytest.mark.parametrize(
    ("name", "params", "size", "gmadds"),
    [
        # torchvision num_params; MAdds: the FLOPs published with the official checkpoints.
        ("efficientnet_v2_s", 21_458_488, 384, 8.4),
        ("efficientnet_v2_m", 54_139_356, 480, 24.7),
        ("efficientnet_v2_l", 118_515_272, 480, 56.3),
    ],
)
def test_efficientnet_v2_madds_and_params(name, params, size, gmadds):
    model = on_meta(name)
    assert count_params(model) == params
    assert madds(model, (1, 3, size, size)) / 1e9 == pytest.approx(gmadds, rel=0.05)


def test_efficientnet_v2_t_is_small():
    model = on_meta("efficientnet_v2_t", num_classes=10, small_input=True)
    assert 1_500_000 < count_params(model) < 2_500_000
    assert madds(model, (1, 3, 32, 32)) < 30e6


# Registry and bad input


def test_names():
    names = zoo.names()
    # ShuffleNet V1, V2, MobileNetV2, EfficientNetV2; then FasterNet, RepVGG, MobileOne, MNv4
    assert len(names) == len(set(names)) == 25 + 4 + 1 + 4 + 6
    for g in (1, 2, 3, 4, 8):
        for w in ("0_25", "0_5", "1_0", "1_5", "2_0"):
            assert f"shufflenet_v1_g{g}_x{w}" in names
    for extra in ["shufflenet_v2_x0_5", "shufflenet_v2_x2_0", "mobilenet_v2", "efficientnet_v2_t"]:
        assert extra in names
    assert zoo.names_with_weights() == TORCHVISION_NAMES


@pytest.mark.parametrize(
    ("name", "cls", "attr", "value"),
    [
        ("shufflenet_v1_g8_x0_5", ShuffleNetV1, "stages_out_channels", [16, 192, 384, 768]),
        ("shufflenet_v2_x1_5", ShuffleNetV2, "stages_out_channels", [24, 176, 352, 704, 1024]),
        ("mobilenet_v2", MobileNetV2, "width_mult", 1.0),
        ("efficientnet_v2_m", EfficientNetV2, "num_classes", 1000),
    ],
)
def test_build_makes_the_named_model(name, cls, attr, value):
    model = on_meta(name)
    assert type(model) is cls and getattr(model, attr) == value


@pytest.mark.parametrize(
    ("builder", "first"),
    [
        (shufflenet_v1, "width_mult"),
        (shufflenet_v2, "width_mult"),
        (mobilenet_v2, "width_mult"),
        (efficientnet_v2, "variant"),
    ],
)
def test_the_family_builders_share_one_signature(builder, first):
    # The argument that names the variant, num_classes, then keyword-only small_input and the rest.
    params = list(inspect.signature(builder).parameters.values())
    assert [p.name for p in params[:2]] == [first, "num_classes"]
    assert all(p.kind is p.POSITIONAL_OR_KEYWORD for p in params[:2])
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params[2:])
    assert "small_input" in [p.name for p in params[2:]]


def test_the_registry_passes_one_width_name():
    for name in zoo.names():
        assert "width" not in zoo.spec(name).kwargs
    assert zoo.spec("shufflenet_v1_g8_x0_5").kwargs == {"groups": 8, "width_mult": 0.5}
    assert zoo.spec("shufflenet_v2_x1_5").kwargs == {"width_mult": 1.5}
    with pytest.raises(TypeError, match="fixes width_mult=0.5"):
        zoo.build("shufflenet_v2_x0_5", width_mult=1.0)


def test_build_unknown_name_lists_the_names():
    with pytest.raises(ValueError) as err:
        zoo.build("shufflenet_v3")
    msg = str(err.value)
    assert "'shufflenet_v3'" in msg
    assert all(n in msg for n in zoo.names())


@pytest.mark.parametrize(
    ("call", "exc", "words"),
    [
        (lambda: zoo.build("mobilenet_v2", num_classes=0), ValueError, ["num_classes", "0"]),
        (lambda: zoo.build("mobilenet_v2", small_input="yes"), TypeError, ["small_input"]),
        (lambda: zoo.build("shufflenet_v1_g3_x1_0", groups=8), TypeError, ["groups=3"]),
        (lambda: zoo.build("mobilenet_v2", num_classes=10.0), TypeError, ["num_classes", "10.0"]),
        (lambda: zoo.build(3), TypeError, ["name", "3"]),
        (lambda: zoo.build("mobilenet_v2", width_mult=0), ValueError, ["width_mult", "0"]),
        (lambda: zoo.build("mobilenet_v2", width_mult="1"), TypeError, ["width_mult", "'1'"]),
        (lambda: shufflenet_v1(1.0, groups=5), ValueError, ["groups", "5", "1, 2, 3, 4, 8"]),
        (lambda: shufflenet_v1(0.75), ValueError, ["width_mult", "0.75", "0.25"]),
        (lambda: shufflenet_v2(0.75), ValueError, ["width_mult", "0.75", "0.5"]),
        (lambda: efficientnet_v2("xl"), ValueError, ["variant", "'xl'", "'t'"]),
        (
            lambda: ShuffleNetV1(3, [24, 200, 400, 800]),
            ValueError,
            ["200", "groups=3", "multiple of 12"],
        ),
        (
            lambda: ShuffleNetV1(8, [12, 192, 384, 768]),
            ValueError,
            ["192 - 12 = 180", "groups=8"],
        ),
        (lambda: ShuffleNetV2([4, 8, 4], [24, 116, 232, 465, 1024]), ValueError, ["465"]),
        (
            lambda: ShuffleNetV2([4, 8], [24, 116, 232, 464, 1024]),
            ValueError,
            ["stages_repeats", "length 3", "[4, 8]"],
        ),
        (
            lambda: MobileNetV2(inverted_residual_setting=[[6, 24, 2, 3]]),
            ValueError,
            ["s in (1, 2)", "[6, 24, 2, 3]"],
        ),
        (lambda: zoo.build("efficientnet_v2_s", dropout=1.5), ValueError, ["dropout", "1.5"]),
    ],
)
def test_bad_input(call, exc, words):
    with pytest.raises(exc) as err:
        call()
    assert all(w in str(err.value) for w in words), str(err.value)


# small_input: a 32x32 image still reaches the last stage at 4x4 (ShuffleNets) or 2x2.
SMALL = [
    ("shufflenet_v1_g3_x0_5", 4),
    ("shufflenet_v1_g8_x0_25", 4),
    ("shufflenet_v2_x0_5", 4),
    ("mobilenet_v2", 2),
    ("efficientnet_v2_t", 2),
    ("efficientnet_v2_s", 2),
    # the networks since 2021: FasterNet's 4x4 stride-4 stem runs at stride 1
    ("fasternet_t0", 4),
    ("repvgg_a0", 2),
    ("mobileone_s0", 2),
    ("mobilenetv4_conv_small", 2),
]


@pytest.mark.parametrize(("name", "side"), SMALL)
def test_small_input_on_32x32(name, side):
    model = zoo.build(name, num_classes=10, small_input=True).eval()
    x = rand(2, 3, 32, 32)
    with torch.inference_mode():
        features = model.forward_features(x)
        logits = model(x)
    assert features.shape[-2:] == (side, side)
    assert logits.shape == (2, 10)
    assert torch.equal(logits, model.forward_head(features))
    big = on_meta(name, num_classes=10).eval()  # without small_input: 1x1 at the last stage
    assert [p.shape for p in big.parameters()] == [p.shape for p in model.parameters()]
    assert big.forward_features(torch.zeros(2, 3, 32, 32, device="meta")).shape[-2:] == (1, 1)


def test_activation_is_injectable_for_the_g4_experiment():
    model = ShuffleNetV2(activation_layer=None)
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert any(isinstance(m, nn.ReLU) for m in ShuffleNetV2().modules())


# torchvision's ImageNet weights


@pytest.fixture
def empty_hub(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    yield tmp_path
    torch.hub.set_dir(old)


def test_load_weights_offline_fails_fast_and_clearly(empty_hub, monkeypatch):
    released, called, answered = threading.Event(), threading.Event(), threading.Event()
    timeouts = []

    def hang(address, timeout=None, *args, **kwargs):  # a network that never answers ...
        timeouts.append(timeout)
        called.set()
        released.wait(30)
        answered.set()
        raise TimeoutError("timed out")  # ... until the test ends, then times out like a socket

    monkeypatch.setattr(socket, "create_connection", hang)
    try:
        _offline_fails_fast(monkeypatch)
        # it gave up while the connection attempt still hung: bounded by its own timeout ...
        assert not answered.is_set()
        assert called.wait(30) and timeouts == [1.0]  # ... which the socket's timeout is too
    finally:
        released.set()  # let the probe thread finish inside this test, not during a later one


def _offline_fails_fast(monkeypatch):

    def no_download(*args, **kwargs):
        raise AssertionError("the download must not start")

    monkeypatch.setattr(net, "download", no_download)
    model = zoo.build("shufflenet_v2_x0_5")
    with pytest.raises(RuntimeError) as err:
        zoo.load_torchvision_weights(model, "shufflenet_v2_x0_5", timeout=1.0)
    msg = str(err.value)
    for words in ["download.pytorch.org", "no answer within 1 s", "Colab", "path=", "checkpoints"]:
        assert words in msg


def test_load_weights_unreachable_host(empty_hub, monkeypatch):
    def refuse(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(RuntimeError, match="Name or service not known"):
        zoo.load_torchvision_weights(zoo.build("mobilenet_v2"), "mobilenet_v2")


def test_load_weights_from_the_hub_cache_needs_no_network(empty_hub, monkeypatch):
    source = randomise_batchnorm(torchvision.models.shufflenet_v2_x0_5())
    url = torchvision.models.ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1.url
    os.makedirs(empty_hub / "checkpoints")
    torch.save(source.state_dict(), empty_hub / "checkpoints" / os.path.basename(url))

    def offline(*args, **kwargs):
        raise AssertionError("no network may be used when the file is cached")

    monkeypatch.setattr(socket, "create_connection", offline)
    model = zoo.load_torchvision_weights(zoo.build("shufflenet_v2_x0_5"), "shufflenet_v2_x0_5")
    for k, v in source.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)


def test_load_weights_downloads_into_the_hub_cache_checked_by_hash(empty_hub, monkeypatch):
    served = empty_hub / "served"
    served.mkdir()
    source = randomise_batchnorm(torchvision.models.shufflenet_v2_x0_5())
    torch.save(source.state_dict(), served / "w.pth")
    blob = (served / "w.pth").read_bytes()
    good = served / f"shufflenetv2_x0.5-{hashlib.sha256(blob).hexdigest()[:10]}.pth"
    bad = served / "shufflenetv2_x0.5-0123456789.pth"  # a name whose hash the bytes do not have
    good.write_bytes(blob)
    bad.write_bytes(blob)
    entry = torchvision.models.ShuffleNet_V2_X0_5_Weights.IMAGENET1K_V1

    def fixed(*args):
        raise AssertionError("the process-wide socket timeout must not change")

    monkeypatch.setattr(socket, "setdefaulttimeout", fixed)
    monkeypatch.setattr(entry.value, "url", bad.as_uri())
    with pytest.raises(RuntimeError, match=f"has SHA-256 {hashlib.sha256(blob).hexdigest()}"):
        zoo.load_torchvision_weights(zoo.build("shufflenet_v2_x0_5"), "shufflenet_v2_x0_5")
    assert os.listdir(empty_hub / "checkpoints") == [], "nothing is kept of a wrong download"
    monkeypatch.setattr(entry.value, "url", good.as_uri())
    model = zoo.load_torchvision_weights(zoo.build("shufflenet_v2_x0_5"), "shufflenet_v2_x0_5")
    assert os.listdir(empty_hub / "checkpoints") == [good.name]  # where torch hub keeps it
    for k, v in source.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)


def test_load_weights_from_a_local_path(tmp_path):
    source = randomise_batchnorm(torchvision.models.mobilenet_v2())
    torch.save(source.state_dict(), tmp_path / "w.pth")
    model = zoo.load_torchvision_weights(
        zoo.build("mobilenet_v2"), "mobilenet_v2", path=tmp_path / "w.pth"
    )
    assert torch.equal(
        model.features[3].conv[1][1].running_var, source.features[3].conv[1][1].running_var
    )


@pytest.mark.parametrize("name", ["shufflenet_v1_g3_x1_0", "efficientnet_v2_t"])
def test_load_weights_refuses_models_without_weights(name):
    with pytest.raises(ValueError) as err:
        zoo.load_torchvision_weights(zoo.build(name), name)
    msg = str(err.value)
    assert "no torchvision counterpart" in msg
    assert all(n in msg for n in TORCHVISION_NAMES)


def test_load_weights_checks_model_before_any_network(monkeypatch):
    def offline(*args, **kwargs):
        raise AssertionError("checks come first")

    monkeypatch.setattr(socket, "create_connection", offline)
    with pytest.raises(ValueError, match=r"fc.weight: ours \(10, 1024\) vs \(1000, 1024\)"):
        zoo.load_torchvision_weights(
            zoo.build("shufflenet_v2_x0_5", num_classes=10), "shufflenet_v2_x0_5"
        )
    with pytest.raises(TypeError, match="MobileNetV2"):
        zoo.load_torchvision_weights(zoo.build("shufflenet_v2_x0_5"), "mobilenet_v2")
    with pytest.raises(ValueError, match="IMAGENET1K_V2"):
        zoo.load_torchvision_weights(zoo.build("mobilenet_v2"), "mobilenet_v2", weights="V9")
    with pytest.raises(ValueError, match="timeout"):
        zoo.load_torchvision_weights(zoo.build("mobilenet_v2"), "mobilenet_v2", timeout=0)


@pytest.mark.parametrize(
    "name", ["shufflenet_v1_g3_x0_25", "shufflenet_v2_x0_5", "efficientnet_v2_t"]
)
def test_one_training_step_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = zoo.build(name, num_classes=10, small_input=True).train()
    loss = nn.functional.cross_entropy(model(rand(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert 1.0 < loss.item() < 10.0  # near log(10) = 2.3 for a fresh 10-class model
    for k, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), k
        assert p.grad.abs().sum() > 0, k


@pytest.mark.parametrize("name", ["shufflenet_v1_g3_x0_5", "shufflenet_v2_x0_5"])
def test_channels_last_stem_changes_memory_not_values(name):
    fast = randomise_batchnorm(zoo.build(name)).eval()
    slow = zoo.build(name, channels_last_stem=False).eval()
    slow.load_state_dict(fast.state_dict())
    x = rand(2, 3, 64, 64)
    with torch.inference_mode():
        a, b = fast.forward_features(x), slow.forward_features(x)
    assert fast.channels_last_stem and not slow.channels_last_stem
    assert (a - b).abs().max() < 1e-5
    assert a.is_contiguous()  # the stages see the usual NCHW layout
    with pytest.raises(TypeError, match="channels_last_stem"):
        zoo.build(name, channels_last_stem=1)


def test_efficientnet_v2_stage_table():
    from shufflelib.models.efficientnet_v2 import stage_table

    t = stage_table(("s", "m"))
    assert t.columns == ["stage", "S", "M"]
    assert t[0]["S"] == "F1 24->24 s1 x2" and t[3]["S"] == "MB4 64->128 s2 x6"
    assert t[6] == {"stage": 7, "S": "-", "M": t[6]["M"]} and t[6]["M"].startswith("MB6 304->512")
    with pytest.raises(ValueError, match="'xl'"):
        stage_table(("s", "xl"))


# The networks the book trains (chapter 9) must stay bit-identical: the results store was trained
# with them. A change that alters their initial weights or the function they compute turns this
# red, and then the store must be retrained (`make results`).

BOOK_NETWORKS = {
    "shufflenet_v1_g3_x0_5": (
        {},
        "5a3db5cd3e61759daf96af5e6713b02c6151989eb11b18a28213dadc2c276295",
        [
            0.124871,
            -0.0393659,
            -0.201293,
            0.765798,
            0.242305,
            0.68285,
            -0.0861833,
            0.100514,
            -0.0621257,
            0.45598,
            0.0462046,
            -0.0139627,
            -0.151888,
            0.692746,
            0.149039,
            0.730042,
            0.0544937,
            -0.083054,
            -0.0824877,
            0.418022,
        ],
    ),
    "shufflenet_v2_x0_5": (
        {},
        "91f5fb9c8a88b0018fc5ddaaec97a2853eb948cd9c9b55d5f56ba98cea01e71f",
        [
            -0.06105,
            0.00844901,
            -0.210694,
            0.182326,
            0.0450633,
            -0.13708,
            0.108627,
            0.214151,
            -0.0840011,
            -0.114325,
            -0.00239478,
            0.0495027,
            -0.182717,
            0.223029,
            -0.0674777,
            -0.161499,
            0.117365,
            0.156768,
            -0.0455177,
            0.000738509,
        ],
    ),
    "mobilenet_v2": (
        {"width_mult": 0.5},
        "b0de337a49ad4e4fa7a111720577201c1dd1039bfec06eda0ffe142572030795",
        [
            0.0504513,
            -0.0559516,
            -0.449169,
            0.120935,
            0.294731,
            0.265591,
            0.0297413,
            0.0987437,
            -0.271436,
            0.0231468,
            -0.00596967,
            0.019662,
            -0.336774,
            0.144103,
            0.152973,
            0.27733,
            0.162093,
            -0.0721264,
            -0.296699,
            0.101582,
        ],
    ),
    "efficientnet_v2_t": (
        {},
        "7f3daea68e2f439c4b7204ce34654ad47e58870be2f949c1399500ac460d7dd2",
        [
            -0.051596,
            -1.39062,
            -0.898957,
            1.0902,
            -0.284223,
            1.06761,
            1.41962,
            -0.320414,
            0.440726,
            0.811621,
            1.08228,
            -1.69903,
            -0.639935,
            0.48373,
            1.48911,
            1.31338,
            0.066804,
            -0.654179,
            -0.310966,
            -2.00451,
        ],
    ),
}


def _state_dict_sha256(model: nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in model.state_dict().items():
        digest.update(key.encode())
        digest.update(repr((tuple(value.shape), str(value.dtype))).encode())
        digest.update(value.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"),
    reason="the pinned digests are x86 AVX2/AVX512 results; torch's scalar kernels draw other bits",
)
@pytest.mark.parametrize("name", list(BOOK_NETWORKS))
def test_the_book_networks_are_unchanged(name):
    kwargs, weights, logits = BOOK_NETWORKS[name]
    torch.manual_seed(0)
    model = zoo.build(name, num_classes=10, small_input=True, **kwargs)
    assert _state_dict_sha256(model) == weights, "initial weights changed: retrain the store"
    model.eval()
    for m in model.modules():  # BatchNorm on batch statistics: the output depends on the input
        if isinstance(m, nn.BatchNorm2d):
            m.train()
    with torch.no_grad():
        got = model(rand(4, 3, 32, 32, seed=2)).flatten()[:20]
    # The bits of a forward pass depend on the CPU's vector width (oneDNN's kernels): a tolerance.
    torch.testing.assert_close(got, torch.tensor(logits), rtol=1e-4, atol=1e-5)
