import pytest
import torch
from torch import nn
from torchvision.models._utils import _make_divisible
from torchvision.ops.misc import Conv2dNormActivation, SqueezeExcitation

from shufflelib.layers import (
    ConvBNAct,
    DropPath,
    SqueezeExcite,
    make_divisible,
    randomise_batchnorm,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ConvBNAct


@pytest.mark.parametrize(
    ("c_in", "c_out", "k", "stride", "groups", "size", "out_size"),
    [
        (3, 24, 3, 2, 1, 224, 112),
        (8, 16, 1, 1, 1, 7, 7),
        (16, 16, 3, 1, 16, 9, 9),  # depthwise keeps the size at stride 1
        (16, 16, 3, 2, 16, 9, 5),  # and halves it (rounding up) at stride 2
        (12, 24, 1, 1, 3, 5, 5),
        (8, 8, 5, 2, 2, 10, 5),
    ],
)
def test_conv_bn_act_output_shape(c_in, c_out, k, stride, groups, size, out_size):
    block = ConvBNAct(c_in, c_out, k, stride, groups).eval()
    assert block(rand(2, c_in, size, size)).shape == (2, c_out, out_size, out_size)
    conv = block[0]
    assert conv.weight.shape == (c_out, c_in // groups, k, k)
    assert conv.padding == (k // 2, k // 2)
    assert (block.in_channels, block.out_channels, block.stride, block.groups) == (
        c_in,
        c_out,
        stride,
        groups,
    )


def test_conv_bn_act_children_are_conv_norm_act_like_torchvision():
    ours = ConvBNAct(8, 16, 3, 2, 2)
    assert [type(m) for m in ours] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU]
    assert ours[0].bias is None  # BatchNorm follows: a bias would be cancelled
    assert ours[2].inplace
    tv = Conv2dNormActivation(8, 16, 3, 2, groups=2)
    assert list(ours.state_dict()) == list(tv.state_dict())
    randomise_batchnorm(tv)
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = rand(2, 8, 9, 9)
    assert torch.equal(ours.eval()(x), tv.eval()(x))


def test_conv_bn_act_without_activation_or_norm():
    linear = ConvBNAct(4, 6, 1, activation_layer=None)
    assert [type(m) for m in linear] == [nn.Conv2d, nn.BatchNorm2d]
    x = -rand(1, 4, 3, 3).abs()
    assert (linear.eval()(x) < 0).any()  # no ReLU: negative outputs survive
    bare = ConvBNAct(4, 6, 3, norm_layer=None)
    assert [type(m) for m in bare] == [nn.Conv2d, nn.ReLU]
    assert bare[0].bias is not None and bare[0].bias.shape == (6,)


def test_conv_bn_act_injected_layers():
    # GELU takes no `inplace`; a norm factory gets the channel count.
    block = ConvBNAct(4, 8, 3, norm_layer=lambda c: nn.GroupNorm(2, c), activation_layer=nn.GELU)
    assert isinstance(block[1], nn.GroupNorm) and block[1].num_channels == 8
    assert isinstance(block[2], nn.GELU)
    silu = ConvBNAct(4, 8, 1, activation_layer=nn.SiLU, inplace=False)
    assert not silu[2].inplace


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        (
            {"in_channels": 12, "out_channels": 16, "groups": 8},
            ValueError,
            ["groups=8", "12", "16"],
        ),
        (
            {"in_channels": 6, "out_channels": 10, "groups": 3, "kernel_size": 1},
            ValueError,
            ["10", "1)"],
        ),
        ({"in_channels": 0, "out_channels": 8}, ValueError, ["in_channels", "0"]),
        ({"in_channels": 4, "out_channels": 8, "stride": 0}, ValueError, ["stride", "0"]),
        (
            {"in_channels": 4, "out_channels": 8, "kernel_size": True},
            TypeError,
            ["kernel_size", "True"],
        ),
        ({"in_channels": 4.0, "out_channels": 8}, TypeError, ["in_channels", "4.0"]),
        ({"in_channels": 4, "out_channels": 8, "padding": -1}, ValueError, ["padding", "-1"]),
        ({"in_channels": 4, "out_channels": 8, "padding": 1.5}, TypeError, ["padding", "1.5"]),
        ({"in_channels": 4, "out_channels": 8, "activation_layer": "relu"}, TypeError, ["'relu'"]),
        ({"in_channels": 4, "out_channels": 8, "inplace": 1}, TypeError, ["inplace", "1"]),
    ],
)
def test_conv_bn_act_bad_arguments(kwargs, error, words):
    with pytest.raises(error) as err:
        ConvBNAct(**kwargs)
    for w in words:
        assert w in str(err.value)


# SqueezeExcite


def test_squeeze_excite_matches_torchvision():
    ours = SqueezeExcite(32, 8, activation_layer=nn.SiLU)
    tv = SqueezeExcitation(32, 8, activation=nn.SiLU)
    assert (
        list(ours.state_dict())
        == list(tv.state_dict())
        == [
            "fc1.weight",
            "fc1.bias",
            "fc2.weight",
            "fc2.bias",
        ]
    )
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = rand(2, 32, 5, 7)
    assert (ours(x) - tv(x)).abs().max() < 1e-6


def test_squeeze_excite_scales_each_channel_by_a_gate_in_0_1():
    se = SqueezeExcite(16, 4)
    x = rand(3, 16, 4, 4).abs() + 0.1
    gate = se(x) / x
    assert gate.shape == (3, 16, 4, 4)
    # One number per sample and channel, the same at every position, strictly between 0 and 1.
    assert torch.allclose(gate, gate[:, :, :1, :1].expand_as(gate), atol=1e-6)
    assert ((gate > 0) & (gate < 1)).all()
    assert se.fc1.weight.shape == (4, 16, 1, 1) and se.fc2.weight.shape == (16, 4, 1, 1)


@pytest.mark.parametrize(
    ("c", "s", "error"), [(0, 4, ValueError), (16, 0, ValueError), (16, 2.5, TypeError)]
)
def test_squeeze_excite_bad_widths(c, s, error):
    with pytest.raises(error, match="channels"):
        SqueezeExcite(c, s)


# DropPath


def test_drop_path_is_identity_in_eval_and_at_p0():
    x = rand(8, 4, 3, 3)
    drop = DropPath(0.5).eval()
    assert drop(x) is x
    assert DropPath(0.0).train()(x) is x


def test_drop_path_statistics():
    torch.manual_seed(0)
    n, p = 20_000, 0.3
    x = torch.ones(n, 3, 2, 2)
    out = DropPath(p).train()(x)
    flat = out.reshape(n, -1)
    # The whole sample is dropped or kept: every element of a row is 0 or 1 / (1 - p).
    dropped = (flat == 0).all(dim=1)
    kept = torch.isclose(flat, torch.full_like(flat, 1 / (1 - p))).all(dim=1)
    assert bool((dropped | kept).all())
    # Fraction dropped ~ p (std 0.003 at this n) and E[output] = input thanks to the rescaling.
    assert abs(dropped.float().mean().item() - p) < 0.015
    assert abs(out.mean().item() - 1.0) < 0.03
    assert torch.equal(x, torch.ones(n, 3, 2, 2))  # the input is untouched


def test_drop_path_p1_drops_everything_and_is_seeded():
    x = rand(64, 2, 2, 2)
    assert torch.equal(DropPath(1.0).train()(x), torch.zeros_like(x))
    drop = DropPath(0.5).train()
    torch.manual_seed(3)
    a = drop(x)
    torch.manual_seed(3)
    assert torch.equal(a, drop(x))
    assert "p=0.5" in repr(drop)


@pytest.mark.parametrize(
    ("p", "error"),
    [
        (-0.1, ValueError),
        (1.5, ValueError),
        ("0.2", TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
)
def test_drop_path_bad_p(p, error):
    with pytest.raises(error, match=rf"p must be a finite number >= 0.0 and <= 1.0, got {p!r}"):
        DropPath(p)


# make_divisible


@pytest.mark.parametrize("divisor", [3, 4, 8, 12, 32])
def test_make_divisible_matches_torchvision(divisor):
    for v in [1, 5.5, 8, 12, 16 * 0.35, 24 * 0.75, 32 * 1.4, 100, 1280 * 1.3, 136, 300.0]:
        assert make_divisible(v, divisor) == _make_divisible(v, divisor)
        assert make_divisible(v, divisor) % divisor == 0


def test_make_divisible_values_and_errors():
    assert make_divisible(100, 8) == 104  # halves round up
    assert make_divisible(12, 8) == 16
    assert make_divisible(3, 8) == 8  # never below the divisor
    assert make_divisible(20, 16) == 32  # 16 would lose 20%: one more divisor
    assert make_divisible(3, 8, min_value=16) == 16  # never below min_value
    with pytest.raises(ValueError, match="value must be a finite number > 0, got 0"):
        make_divisible(0, 8)
    with pytest.raises(TypeError, match="value"):
        make_divisible("8", 8)
    with pytest.raises(ValueError, match="divisor must be an int >= 1, got 0"):
        make_divisible(10, 0)
    with pytest.raises(ValueError, match="min_value must be an int >= 1, got -3"):
        make_divisible(32, min_value=-3)
    with pytest.raises(TypeError, match="min_value"):
        make_divisible(32, min_value=8.0)


def test_drop_path_probabilities_in_forward_order():
    from torch import nn

    from shufflelib.layers import DropPath, drop_path_probabilities

    net = nn.Sequential(DropPath(0.0), nn.ReLU(), nn.Sequential(DropPath(0.1), DropPath(0.2)))
    assert drop_path_probabilities(net) == [0.0, 0.1, 0.2]
    with pytest.raises(TypeError, match="Module"):
        drop_path_probabilities([DropPath(0.1)])


def test_make_activation_passes_inplace_only_where_it_is_taken():
    from shufflelib.layers import make_activation

    assert make_activation(nn.ReLU).inplace and not make_activation(nn.ReLU, False).inplace
    assert isinstance(make_activation(nn.GELU), nn.GELU)  # GELU takes no inplace
    with pytest.raises(TypeError, match="activation_layer must be callable, got 'relu'"):
        make_activation("relu")
    with pytest.raises(TypeError, match="inplace must be True or False, got 1"):
        make_activation(nn.ReLU, 1)


def test_init_weights_follows_torchvision():
    from torch import nn

    from shufflelib.layers import init_weights

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(16, 64, 3, bias=True), nn.BatchNorm2d(64), nn.Linear(64, 100))
    init_weights(net, linear="normal")
    conv, bn, fc = net
    fan_out = 64 * 9
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.1)
    assert torch.equal(conv.bias, torch.zeros(64)) and torch.equal(bn.weight, torch.ones(64))
    assert torch.equal(bn.bias, torch.zeros(64)) and torch.equal(fc.bias, torch.zeros(100))
    assert fc.weight.std().item() == pytest.approx(0.01, rel=0.1)
    init_weights(net, linear="uniform")
    assert fc.weight.abs().max().item() <= 1 / 100**0.5
    with pytest.raises(ValueError, match="linear must be one of 'normal', 'uniform'; got 'xavier'"):
        init_weights(net, linear="xavier")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got 'x'"):
        init_weights("x")


def test_randomise_batchnorm_is_seeded_and_changes_eval_outputs():
    from torch import nn

    from shufflelib.layers import randomise_batchnorm

    a = randomise_batchnorm(nn.Sequential(nn.BatchNorm2d(8)), seed=3)
    b = randomise_batchnorm(nn.Sequential(nn.BatchNorm2d(8)), seed=3)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    x = rand(2, 8, 4, 4)
    fresh = nn.BatchNorm2d(8).eval()
    assert not torch.allclose(a.eval()(x), fresh(x), atol=1e-3)
    assert (a[0].running_var >= 0.5).all()
    with pytest.raises(ValueError, match="seed must be an int >= 0, got -1"):
        randomise_batchnorm(a, seed=-1)
    with pytest.raises(TypeError, match="model"):
        randomise_batchnorm([a])
