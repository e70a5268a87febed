import pytest
import torch
from torch import nn

from shufflelib.cost import count_params, madds

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
    "input_size", [[], (), (1, 0, 4), (1, -3, 4, 4), "abc", (1.5, 3), (1, True, 4, 4), 7, None]
)
def test_madds_bad_input_size(input_size):
    with pytest.raises(ValueError, match="input_size"):
        madds(nn.Conv2d(3, 3, 1), input_size)


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
