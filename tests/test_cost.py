import pytest
import torch
from torch import nn

from shufflelib.cost import (
    count_params,
    guideline_profile,
    layer_report,
    mac,
    mac_vs_groups,
    mac_vs_ratio,
    madds,
    pointwise_mac,
    size_table,
    stage_report,
    torchinfo_summary,
)

# (c_in, c_out, kernel, groups): dense, grouped, and depthwise (groups = channels).
CONVS = [
    (8, 16, 3, 1),
    (8, 16, 3, 2),
    (8, 16, 3, 4),
    (8, 16, 3, 8),
    (16, 16, 3, 16),
    (12, 24, 1, 3),
    (6, 6, 5, 6),
]


@pytest.mark.parametrize(("c_in", "c_out", "k", "g"), CONVS)
def test_count_params_group_conv(c_in, c_out, k, g):
    conv = nn.Conv2d(c_in, c_out, k, groups=g, bias=False)
    assert count_params(conv) == k * k * c_in * c_out // g
    assert isinstance(count_params(conv), int)


@pytest.mark.parametrize(("c_in", "c_out", "k", "g"), CONVS)
def test_count_params_with_bias(c_in, c_out, k, g):
    conv = nn.Conv2d(c_in, c_out, k, groups=g, bias=True)
    assert count_params(conv) == k * k * c_in * c_out // g + c_out


def test_count_params_depthwise_is_k_squared_per_channel():
    assert count_params(nn.Conv2d(32, 32, 3, groups=32, bias=False)) == 32 * 9


def test_count_params_trainable_only():
    frozen = nn.Conv2d(4, 8, 3, bias=False)
    trained = nn.Conv2d(8, 8, 1, groups=2, bias=True)
    model = nn.Sequential(frozen, nn.BatchNorm2d(8), trained)
    frozen.requires_grad_(False)
    n_frozen = 9 * 4 * 8
    n_bn = 2 * 8  # weight and bias; running stats are buffers, not parameters
    n_trained = 8 * 8 // 2 + 8
    assert count_params(model) == n_frozen + n_bn + n_trained
    assert count_params(model, trainable_only=True) == n_bn + n_trained
    model.requires_grad_(False)
    assert count_params(model, trainable_only=True) == 0
    assert count_params(model) == n_frozen + n_bn + n_trained


def test_count_params_shared_parameter_counted_once():
    conv = nn.Conv2d(4, 4, 1, bias=False)
    assert count_params(nn.Sequential(conv, nn.ReLU(), conv)) == 16


def test_count_params_no_parameters():
    assert count_params(nn.ReLU()) == 0


@pytest.mark.parametrize("model", [lambda x: x, torch.zeros(3), "conv", None])
def test_count_params_non_module(model):
    with pytest.raises(TypeError, match="Module"):
        count_params(model)


@pytest.mark.parametrize(("c_in", "c_out", "k", "g"), CONVS)
@pytest.mark.parametrize(("h", "w"), [(5, 5), (4, 7)])
def test_madds_group_conv(c_in, c_out, k, g, h, w):
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=g, bias=False)
    result = madds(conv, (1, c_in, h, w))
    assert isinstance(result, int)
    assert result == k * k * c_in * c_out * h * w // g


def test_madds_strided_conv_counts_output_positions():
    conv = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False)
    # 8x8 input, stride 2: 4x4 output positions.
    assert madds(conv, (1, 4, 8, 8)) == 9 * 4 * 8 * 16


@pytest.mark.parametrize(("n_in", "n_out"), [(5, 7), (16, 3), (1, 1)])
def test_madds_linear(n_in, n_out):
    assert madds(nn.Linear(n_in, n_out), (1, n_in)) == n_in * n_out


def small_net():
    return nn.Sequential(
        nn.Conv2d(4, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 1, groups=2, bias=False),
    )


def test_madds_sequential_counts_only_convs():
    h = w = 6
    first = 9 * 4 * 8 * h * w
    second = 8 * 8 * h * w // 2
    assert madds(small_net(), (1, 4, h, w)) == first + second


def test_madds_batch_size_doubles():
    net = small_net()
    one = madds(net, (1, 4, 6, 6))
    assert madds(net, (2, 4, 6, 6)) == 2 * one
    assert madds(net, [3, 4, 6, 6]) == 3 * one


def test_madds_elementwise_only_is_zero():
    assert madds(nn.Sequential(nn.ReLU(), nn.Identity()), (1, 3, 4, 4)) == 0


@pytest.mark.parametrize("training", [True, False])
def test_madds_restores_training_mode(training):
    net = small_net()
    net.train(training)
    madds(net, (1, 4, 6, 6))
    assert net.training is training
    assert all(m.training is training for m in net.modules())


def test_madds_leaves_batchnorm_statistics_and_grads_alone():
    net = small_net().train()
    bn = net[1]
    mean, var, batches = (
        bn.running_mean.clone(),
        bn.running_var.clone(),
        bn.num_batches_tracked.clone(),
    )
    madds(net, (2, 4, 6, 6))
    assert torch.equal(bn.running_mean, mean)
    assert torch.equal(bn.running_var, var)
    assert torch.equal(bn.num_batches_tracked, batches)
    assert all(p.grad is None for p in net.parameters())


def test_madds_uses_the_model_dtype():
    conv = nn.Conv2d(2, 4, 1, bias=False).double()
    assert madds(conv, (1, 2, 3, 3)) == 2 * 4 * 9


@pytest.mark.parametrize(
    ("input_size", "error"),
    [
        ([], ValueError),
        ((), ValueError),
        ((1, 0, 4), ValueError),
        ((1, -3, 4, 4), ValueError),
        ("abc", TypeError),
        ((1.5, 3), TypeError),
        ((1, True, 4, 4), TypeError),
        (7, TypeError),
        (None, TypeError),
    ],
)
def test_madds_bad_input_size(input_size, error):
    with pytest.raises(error, match="input_size must be a sequence of ints >= 1, got "):
        madds(nn.Conv2d(3, 3, 1), input_size)


def test_an_input_the_model_cannot_take_is_named():
    conv = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"input_size \(3, 32, 32\) does not fit Sequential: mat1"):
        madds(nn.Sequential(conv, nn.Flatten(0), nn.Linear(4, 2)), (3, 32, 32))


@pytest.mark.parametrize("model", [lambda x: x, torch.zeros(3), None])
def test_madds_non_module(model):
    with pytest.raises(TypeError, match="Module"):
        madds(model, (1, 3))


def test_madds_restores_mixed_training_modes():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1))
    net.train()
    net[1].eval()  # e.g. frozen BatchNorm statistics while fine-tuning
    madds(net, (1, 3, 8, 8))
    assert [m.training for m in net.modules()] == [True, True, False, True]


# Memory access cost (the ShuffleNet V2 paper's definition) and the per-layer report.


@pytest.mark.parametrize(("c1", "c2", "h", "w"), [(32, 64, 14, 14), (3, 5, 7, 9), (128, 128, 1, 1)])
def test_mac_pointwise_conv_is_eq1(c1, c2, h, w):
    conv = nn.Conv2d(c1, c2, 1, bias=False)
    got = mac(conv, (1, c1, h, w))
    assert got.elements == h * w * (c1 + c2) + c1 * c2
    assert got.bytes == 4 * got.elements
    assert got.elements == pointwise_mac(h, w, c1, c2)


@pytest.mark.parametrize("g", [1, 2, 4, 8])
def test_mac_group_conv_is_eq2(g):
    c1, c2, h, w = 32, 64, 14, 14
    conv = nn.Conv2d(c1, c2, 1, groups=g, bias=False)
    assert mac(conv, (1, c1, h, w)).elements == h * w * (c1 + c2) + c1 * c2 // g


def test_mac_depthwise_and_bias_and_batch():
    c, h, w = 16, 10, 10
    dw = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=True)
    # input + output + 9 weights per channel + bias
    assert mac(dw, (1, c, h, w)).elements == 2 * h * w * c + 9 * c + c
    # batch 3: feature maps triple, weights are read once
    assert mac(dw, (3, c, h, w)).elements == 3 * 2 * h * w * c + 10 * c


def test_mac_counts_elementwise_and_skips_views():
    class Unit(nn.Module):
        def forward(self, x):
            a, b = x.chunk(2, dim=1)  # views: free
            y = torch.cat((a, torch.relu(b)), dim=1)  # relu: N/2 in + N/2 out; cat: N in + N out
            return y.reshape(y.shape[0], -1)  # view: free

    n = 1 * 8 * 4 * 4
    assert mac(Unit(), (1, 8, 4, 4)).elements == n + 2 * n


def test_mac_half_precision_bytes():
    conv = nn.Conv2d(8, 8, 1, bias=False).half()
    got = mac(conv, (1, 8, 4, 4))
    assert got.bytes == 2 * got.elements


def test_mac_small_network_is_sum_of_layers():
    c = 8
    net = nn.Sequential(
        nn.Conv2d(c, 2 * c, 1, bias=False),
        nn.ReLU(),
        nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c, bias=False),
        nn.Conv2d(2 * c, c, 1, bias=False),
    )
    h = w = 6
    hw = h * w
    want = (
        (hw * c + hw * 2 * c + c * 2 * c)  # 1x1
        + 2 * hw * 2 * c  # ReLU reads and writes
        + (2 * hw * 2 * c + 9 * 2 * c)  # depthwise
        + (hw * 2 * c + hw * c + 2 * c * c)  # 1x1
    )
    assert mac(net, (1, c, h, w)).elements == want
    report = layer_report(net, (1, c, h, w))
    assert report.column("layer") == ["0", "1", "2", "3"]
    assert report.column("type") == ["Conv2d", "ReLU", "Conv2d", "Conv2d"]
    assert sum(report.column("MAC elements")) == want
    assert report.unit("MAC elements") == "" and report.header("MAC") == "MAC (bytes)"
    assert sum(report.column("MAdds")) == madds(net, (1, c, h, w))
    assert report.column("MAdds")[1] == 0 and report.column("MAdd/byte")[1] == 0
    assert report[0]["input"] == (1, c, h, w) and report[0]["output"] == (1, 2 * c, h, w)
    assert report[0]["MAdd/byte"] == pytest.approx(hw * c * 2 * c / (4 * (hw * 3 * c + 2 * c * c)))


def test_layer_report_names_functional_work_of_a_parent():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1, bias=False)

        def forward(self, x):
            return torch.cat((x, self.conv(x)), dim=1)

    rows = {r["layer"]: r for r in layer_report(Block(), (1, 4, 3, 3))}
    assert set(rows) == {"conv", "(model):cat"}
    assert rows["(model):cat"]["MAC elements"] == 2 * 36 + 72


def test_mac_restores_modes_and_rejects_bad_input():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    net.train()
    mac(net, (2, 3, 4, 4))
    assert all(m.training for m in net.modules())
    with pytest.raises(TypeError, match="Module"):
        mac("net", (1, 3, 4, 4))
    with pytest.raises(ValueError, match="input_size"):
        layer_report(net, (1, 0, 4, 4))


def test_mac_vs_ratio_meets_the_bound_at_equal_width():
    h = w = 56
    flops = h * w * 128 * 128
    table = mac_vs_ratio(h, w, flops, [0.25, 0.5, 1.0, 2.0, 6.0, 12.0])
    for row in table:
        assert row["c1"] * row["c2"] * h * w == pytest.approx(flops)
        assert row["MAC"] >= row["lower bound"] - 1e-6
    at_one = table[2]
    assert at_one["c1"] == pytest.approx(128) and at_one["MAC"] == pytest.approx(
        at_one["lower bound"]
    )
    macs = table.column("MAC")
    assert macs[2] == min(macs)
    assert macs[3] < macs[4] < macs[5]  # rising on the right of the valley


def test_mac_vs_groups_grows_linearly():
    h = w = 28
    c1, flops = 64, 28 * 28 * 64 * 64
    table = mac_vs_groups(h, w, c1, flops, [1, 2, 4, 8])
    macs = table.column("MAC")
    steps = [b - a for a, b in zip(macs, macs[1:])]
    assert steps[1] == pytest.approx(2 * steps[0]) and steps[2] == pytest.approx(2 * steps[1])
    assert macs[0] == pytest.approx(h * w * c1 + flops / c1 + flops / (h * w))
    with pytest.raises(ValueError, match="0"):
        mac_vs_groups(h, w, c1, flops, [0])
    with pytest.raises(ValueError, match="flops"):
        mac_vs_ratio(h, w, -1, [1.0])
    with pytest.raises(ValueError, match="c2"):
        pointwise_mac(1, 1, 1, 0)


def test_stage_report_sums_to_the_whole_model():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
            self.body = nn.Sequential(nn.Conv2d(8, 8, 1), nn.Conv2d(8, 16, 1, bias=False))
            self.fc = nn.Linear(16, 5)

        def forward(self, x):
            return self.fc(self.body(self.stem(x)).mean(dim=(2, 3)))

    net, shape = Net(), (2, 3, 6, 6)
    report = stage_report(net, shape)
    assert report.column("stage") == ["stem", "body", "fc", "(model)"]
    assert sum(report.column("params")) == count_params(net)
    assert sum(report.column("MAdds")) == madds(net, shape)
    assert sum(report.column("MAC")) == mac(net, shape).bytes
    assert report.unit("MAC") == "bytes" and report.header("MAC") == "MAC (bytes)"
    assert report[0]["output"] == (2, 8, 6, 6) and report[1]["output"] == (2, 16, 6, 6)
    deeper = stage_report(net, shape, depth=2)
    assert deeper.column("stage")[:4] == ["stem.0", "stem.1", "body.0", "body.1"]
    with pytest.raises(ValueError, match="depth"):
        stage_report(net, shape, depth=0)


def test_size_table_gives_params_madds_and_mac_per_model():
    a = nn.Conv2d(8, 16, 1, bias=False)
    b = nn.Conv2d(8, 16, 1, groups=4, bias=False)
    t = size_table({"dense": a, "grouped": b}, (1, 8, 10, 10), title="two convs")
    assert t.title == "two convs" and [r["model"] for r in t] == ["dense", "grouped"]
    dense, grouped = t
    assert dense["params"] == 128 / 1e6 and grouped["params"] == 32 / 1e6
    assert dense["MAdds"] == 100 * 128 / 1e6 and grouped["MAdds"] == 100 * 32 / 1e6
    assert dense["MAC"] == 4 * (100 * (8 + 16) + 128) / 1e6  # Eq. 1, float32
    assert t.units == {"params": "M", "MAdds": "M", "MAC": "MB"}
    assert t.header("MAC") == "MAC (MB)" and t.unit("model") == ""


@pytest.mark.parametrize(
    "models, size, error, match",
    [
        ({}, (1, 3, 8, 8), ValueError, "models must have at least one entry"),
        ([nn.Conv2d(3, 3, 1)], (1, 3, 8, 8), TypeError, "models must be a mapping"),
        ({"x": "conv"}, (1, 3, 8, 8), TypeError, r"models\['x'\] must be a torch.nn.Module"),
        ({"x": nn.Conv2d(3, 3, 1)}, (1, 0, 8, 8), ValueError, "input_size must be"),
    ],
)
def test_size_table_rejects_bad_input(models, size, error, match):
    with pytest.raises(error, match=match):
        size_table(models, size)


def test_torchinfo_summary_is_a_table_of_torchinfos_counts():
    conv1, conv2 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.Conv2d(8, 4, 1, bias=False)
    net = nn.Sequential(conv1, nn.Sequential(nn.ReLU(), conv2))
    t = torchinfo_summary(net, (1, 3, 16, 16))
    assert t.columns == ["module", "output shape", "params", "mult-adds"]
    assert [r["module"] for r in t] == [
        "Sequential: 0-1",
        ". Conv2d: 1-1",
        ". Sequential: 1-2",
        ". . ReLU: 2-1",
        ". . Conv2d: 2-2",
    ]
    assert t[0]["params"] == count_params(net) and t[0]["output shape"] == (1, 4, 16, 16)
    conv1, conv2 = 8 * 3 * 9 * 16 * 16, 4 * 8 * 16 * 16  # the two convolutions' multiply-adds
    assert [r["mult-adds"] for r in t] == [conv1 + conv2, conv1, conv2, 0, conv2]
    assert f"{count_params(net):,} parameters" in t.note
    assert len(torchinfo_summary(net, (1, 3, 16, 16), depth=1)) == 3
    with pytest.raises(TypeError, match="torch.nn.Module"):
        torchinfo_summary("net")
    with pytest.raises(ValueError, match="depth"):
        torchinfo_summary(net, (1, 3, 16, 16), depth=0)


class _Residual(nn.Module):
    """A 1x1 c -> 4c -> c pair with a ReLU between and a shortcut around it (no BatchNorm)."""

    def __init__(self, c: int = 8, groups: int = 1):
        super().__init__()
        self.expand = nn.Conv2d(c, 4 * c, 1, bias=False)
        self.dw = nn.Conv2d(4 * c, 4 * c, 3, padding=1, groups=4 * c, bias=False)
        self.project = nn.Conv2d(4 * c, c, 1, groups=groups, bias=False)

    def forward(self, x):
        return x + self.project(torch.relu(self.dw(self.expand(x))))


def test_guideline_profile_counts_each_guideline_by_hand():
    c, hw = 8, 5 * 5
    row = guideline_profile({"block": _Residual(c)}, (1, c, 5, 5))[0]
    # G1: Eq. 1 of the two 1x1 convolutions over its value at equal widths, 2 hw c + (2c)^2 each
    assert row["1x1 MAC / minimum"] == pytest.approx(
        2 * (hw * 5 * c + 4 * c * c) / (2 * (hw * 4 * c + 4 * c * c))
    )
    dw, pw = hw * 4 * c * 9, hw * 4 * c * c
    assert row["depthwise MAdds"] == pytest.approx(100 * dw / (dw + 2 * pw))
    assert row["grouped MAdds"] == 0
    assert row["operators"] == 5  # three convolutions, the ReLU and the addition
    relu, add = 2 * hw * 4 * c, 3 * hw * c
    macs = mac(_Residual(c), (1, c, 5, 5)).elements
    assert row["element-wise MAC"] == pytest.approx(100 * (relu + add) / macs)


def test_guideline_profile_grouped_and_no_pointwise():
    row = guideline_profile({"g": _Residual(8, groups=4)}, (1, 8, 4, 4))[0]
    assert row["grouped MAdds"] > 0
    only_dw = nn.Conv2d(4, 4, 3, groups=4)
    row = guideline_profile({"dw": only_dw}, (1, 4, 6, 6))[0]
    assert row["1x1 MAC / minimum"] is None and row["depthwise MAdds"] == 100
    assert row["element-wise MAC"] == 0


def test_guideline_profile_folding_reduces_operators():
    from shufflelib.models import build, reparameterize

    m = build("repvgg_a0").eval()
    table = guideline_profile({"train": m, "deployed": reparameterize(m)}, (1, 3, 32, 32))
    train, deployed = table.column("operators")
    assert deployed < train / 3
    assert table.unit("element-wise MAC") == "%"


@pytest.mark.parametrize(
    "models, size, error, match",
    [
        ({}, (1, 3, 8, 8), ValueError, "models"),
        ({"x": 3}, (1, 3, 8, 8), TypeError, "models\\['x'\\]"),
        ({"x": nn.ReLU()}, (1, 0, 8), ValueError, "input_size"),
    ],
)
def test_guideline_profile_rejects_bad_input(models, size, error, match):
    with pytest.raises(error, match=match):
        guideline_profile(models, size)
