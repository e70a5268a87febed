import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.functional import jacobian

from shufflelib.ops import (
    channel_shuffle,
    channel_split,
    group_connectivity,
    group_conv_dense_weight,
    shuffle_permutation,
    shuffle_split,
)

SHUFFLE_CASES = [(6, 1), (6, 2), (6, 3), (6, 6), (8, 2), (8, 4), (12, 3), (12, 4), (1, 1)]


def explicit_perm(channels, groups):
    # Output channel k holds input channel (k % g) * (C // g) + k // g.
    per_group = channels // groups
    return [(k % groups) * per_group + k // groups for k in range(channels)]


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# channel_shuffle


@pytest.mark.parametrize(("channels", "groups"), SHUFFLE_CASES)
def test_channel_shuffle_equals_explicit_permutation(channels, groups):
    x = rand(2, channels, 3, 4)
    assert torch.equal(channel_shuffle(x, groups), x[:, explicit_perm(channels, groups)])


@pytest.mark.parametrize(("channels", "groups"), SHUFFLE_CASES)
def test_channel_shuffle_equals_torch_channel_shuffle(channels, groups):
    x = rand(2, channels, 3, 4)
    assert torch.equal(channel_shuffle(x, groups), nn.ChannelShuffle(groups)(x))


def test_channel_shuffle_known_small_example():
    x = torch.arange(6.0).reshape(1, 6, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]


@pytest.mark.parametrize("groups", [1, 2, 3, 6])
def test_channel_shuffle_group_count_extremes_are_identity_or_not(groups):
    x = rand(2, 6, 2, 2)
    y = channel_shuffle(x, groups)
    # Only g = 1 and g = C leave the channel order as it is.
    assert torch.equal(y, x) == (groups in (1, 6))


@pytest.mark.parametrize(("channels", "groups"), [(6, 1), (6, 2), (6, 3), (6, 6), (12, 4)])
def test_channel_shuffle_channels_last(channels, groups):
    x = rand(2, channels, 3, 4)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    assert not x_cl.is_contiguous()
    y = channel_shuffle(x_cl, groups)
    assert torch.equal(y, x[:, explicit_perm(channels, groups)])
    assert y.is_contiguous(memory_format=torch.channels_last)


def test_channel_shuffle_non_contiguous_input():
    x = rand(2, 12, 5, 6)[:, :, 1:4, ::2]
    assert not x.is_contiguous()
    assert torch.equal(channel_shuffle(x, 3), x[:, explicit_perm(12, 3)])


def test_channel_shuffle_returns_new_tensor_for_g1():
    x = rand(1, 4, 2, 2)
    y = channel_shuffle(x, 1)
    y.zero_()
    assert not torch.equal(x, y)
    assert x.abs().sum() > 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16, torch.int64])
@pytest.mark.parametrize("channels_last", [False, True])
def test_channel_shuffle_preserves_dtype(dtype, channels_last):
    x = (rand(2, 6, 3, 3) * 10).to(dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = channel_shuffle(x, 3)
    assert y.dtype == dtype
    assert torch.equal(y, x[:, explicit_perm(6, 3)])


@pytest.mark.parametrize(("channels", "groups"), [(6, 2), (6, 3), (8, 4), (12, 3)])
def test_channel_shuffle_gradient_is_inverse_permutation(channels, groups):
    x = rand(2, channels, 2, 3).requires_grad_(True)
    weights = rand(2, channels, 2, 3, seed=1)
    (channel_shuffle(x, groups) * weights).sum().backward()
    perm = explicit_perm(channels, groups)
    expected = torch.empty_like(weights)
    expected[:, perm] = weights  # d/dx[:, perm[k]] of sum_k y[:, k] * w[:, k] is w[:, k]
    assert torch.equal(x.grad, expected)


@pytest.mark.parametrize(("channels", "groups"), SHUFFLE_CASES)
def test_channel_shuffle_inverse(channels, groups):
    x = rand(2, channels, 3, 3)
    assert torch.equal(channel_shuffle(channel_shuffle(x, groups), channels // groups), x)


@pytest.mark.parametrize(
    ("shape", "match"),
    [((2, 6, 3), r"4-d.*\(2, 6, 3\)"), ((1, 2, 6, 3, 3), r"\(1, 2, 6, 3, 3\)"), ((6,), r"\(6,\)")],
)
def test_channel_shuffle_wrong_rank(shape, match):
    with pytest.raises(ValueError, match=match):
        channel_shuffle(torch.zeros(shape), 2)


def test_channel_shuffle_channels_not_divisible():
    with pytest.raises(ValueError, match=r"\b6\b.*\b4\b"):
        channel_shuffle(torch.zeros(1, 6, 2, 2), 4)


@pytest.mark.parametrize(
    ("groups", "error", "match"),
    [
        (0, ValueError, r"groups must be an int >= 1, got 0"),
        (-1, ValueError, r"got -1"),
        (2.0, TypeError, r"got 2\.0"),
        (True, TypeError, r"got True"),
        ("2", TypeError, r"got '2'"),
        (None, TypeError, "got None"),
    ],
)
def test_channel_shuffle_bad_groups(groups, error, match):
    with pytest.raises(error, match=match):
        channel_shuffle(torch.zeros(1, 4, 2, 2), groups)


@pytest.mark.parametrize(("x", "match"), [([[1.0]], r"\[\[1\.0\]\]"), (3.0, "3.0"), (None, "None")])
def test_channel_shuffle_non_tensor(x, match):
    with pytest.raises(TypeError, match=match):
        channel_shuffle(x, 2)


# channel_split


def test_channel_split_default_halves():
    x = rand(2, 8, 3, 3)
    halves = channel_split(x)
    assert len(halves) == 2
    assert torch.equal(halves[0], x[:, :4])
    assert torch.equal(halves[1], x[:, 4:])
    # Views, not copies.
    assert all(h.untyped_storage().data_ptr() == x.untyped_storage().data_ptr() for h in halves)


def test_channel_split_three_sections():
    x = rand(2, 9, 2, 2)
    parts = channel_split(x, 3)
    assert len(parts) == 3
    for k, part in enumerate(parts):
        assert part.shape == (2, 3, 2, 2)
        assert torch.equal(part, x[:, 3 * k : 3 * (k + 1)])
    assert torch.equal(torch.cat(parts, dim=1), x)


@pytest.mark.parametrize(
    ("sections", "error", "match"),
    [
        (0, ValueError, r"sections must be an int >= 1, got 0"),
        (-2, ValueError, "-2"),
        (2.0, TypeError, r"2\.0"),
        (True, TypeError, "True"),
        (3, ValueError, r"\b8\b.*\b3\b"),
    ],
)
def test_channel_split_bad_sections(sections, error, match):
    with pytest.raises(error, match=match):
        channel_split(torch.zeros(1, 8, 2, 2), sections)


def test_channel_split_bad_input():
    with pytest.raises(ValueError, match=r"4-d.*\(1, 8, 2\)"):
        channel_split(torch.zeros(1, 8, 2))
    with pytest.raises(TypeError, match=r"x must be a torch.Tensor, got \[1, 2\]"):
        channel_split([1, 2])


# shuffle_split

SPLIT_SHAPES = [(2, 8, 3, 3), (1, 12, 4, 5), (3, 16, 1, 1), (2, 24, 2, 3)]


@pytest.mark.parametrize("shape", [*SPLIT_SHAPES, (2, 4, 3, 3)])
def test_shuffle_split_equals_split_after_shuffle(shape):
    x = rand(*shape)
    first, second = shuffle_split(x)
    want_first, want_second = channel_split(channel_shuffle(x, 2))
    assert first.shape == second.shape == (shape[0], shape[1] // 2, shape[2], shape[3])
    assert torch.equal(first, want_first)
    assert torch.equal(second, want_second)


@pytest.mark.parametrize("shape", SPLIT_SHAPES)
def test_shuffle_split_halves_contiguous(shape):
    first, second = shuffle_split(rand(*shape))
    assert first.is_contiguous()
    assert second.is_contiguous()


def test_shuffle_split_quarters():
    # First half: quarters 0 and 2 interleaved; second half: quarters 1 and 3 interleaved.
    x = torch.arange(8.0).reshape(1, 8, 1, 1)
    first, second = shuffle_split(x)
    assert first.flatten().tolist() == [0, 4, 1, 5]
    assert second.flatten().tolist() == [2, 6, 3, 7]


@pytest.mark.parametrize("shape", SPLIT_SHAPES)
def test_shuffle_split_channels_last(shape):
    x = rand(*shape)
    first, second = shuffle_split(x.contiguous(memory_format=torch.channels_last))
    want_first, want_second = channel_split(channel_shuffle(x, 2))
    assert torch.equal(first, want_first)
    assert torch.equal(second, want_second)


@pytest.mark.parametrize("channels", [2, 6, 10])
def test_shuffle_split_channels_not_multiple_of_4(channels):
    with pytest.raises(ValueError, match=rf"\b{channels}\b"):
        shuffle_split(torch.zeros(1, channels, 2, 2))


def test_shuffle_split_bad_input():
    with pytest.raises(ValueError, match=r"4-d.*\(8, 2, 2\)"):
        shuffle_split(torch.zeros(8, 2, 2))
    with pytest.raises(TypeError):
        shuffle_split("x")


# shuffle_permutation


@pytest.mark.parametrize(("channels", "groups"), SHUFFLE_CASES)
def test_shuffle_permutation(channels, groups):
    p = shuffle_permutation(channels, groups)
    assert p.dtype == torch.int64
    assert torch.equal(p.sort().values, torch.arange(channels))
    assert p.tolist() == explicit_perm(channels, groups)
    x = rand(2, channels, 2, 3)
    assert torch.equal(x[:, p], channel_shuffle(x, groups))


def test_shuffle_permutation_bad_input():
    with pytest.raises(ValueError, match=r"\b6\b.*\b4\b"):
        shuffle_permutation(6, 4)
    with pytest.raises(ValueError, match="channels must be an int >= 1, got 0"):
        shuffle_permutation(0, 1)
    with pytest.raises(ValueError, match="groups must be an int >= 1, got 0"):
        shuffle_permutation(6, 0)
    with pytest.raises(TypeError, match="channels"):
        shuffle_permutation(6.0, 2)


# group_connectivity


def block_diag_ones(channels, groups):
    size = channels // groups
    return torch.block_diag(*[torch.ones(size, size)] * groups).bool()


@pytest.mark.parametrize(("channels", "groups"), [(12, 1), (12, 2), (12, 3), (12, 12), (8, 4)])
def test_group_connectivity_single_layer(channels, groups):
    m = group_connectivity(channels, groups)
    assert m.dtype == torch.bool
    assert m.shape == (channels, channels)
    assert torch.equal(m, block_diag_ones(channels, groups))
    assert torch.equal(group_connectivity(channels, [groups]), m)


def test_group_connectivity_stack_without_shuffle_stays_block_diagonal():
    m = group_connectivity(12, [3, 3])
    assert torch.equal(m, block_diag_ones(12, 3))
    assert m.sum(dim=1).tolist() == [4] * 12
    assert torch.equal(group_connectivity(12, (3, 3, 3), shuffle=False), m)


def test_group_connectivity_stack_with_shuffle_sees_everything():
    m = group_connectivity(12, [3, 3], shuffle=True)
    assert m.all()
    assert m.sum(dim=1).tolist() == [12] * 12


def conv_stack_pattern(channels, groups, shuffle):
    """Nonzero pattern of the Jacobian of real 1x1 group convolutions with shuffles between."""
    torch.manual_seed(0)
    layers = []
    for g in groups:
        conv = nn.Conv2d(channels, channels, 1, groups=g, bias=False)
        with torch.no_grad():
            conv.weight.uniform_(0.1, 1.0)  # positive: no accidental cancellation
        layers.append(conv)
    shuffles = [shuffle] * (len(groups) - 1) if isinstance(shuffle, bool) else list(shuffle)

    def stack(x):
        for k, (conv, g) in enumerate(zip(layers, groups, strict=True)):
            x = conv(x)
            if k < len(groups) - 1 and shuffles[k]:
                x = channel_shuffle(x, g)
        return x

    jac = jacobian(stack, torch.ones(1, channels, 1, 1))
    return jac.reshape(channels, channels).abs() > 0


@pytest.mark.parametrize(
    ("channels", "groups", "shuffle"),
    [
        (12, [3], False),
        (12, [3, 3], False),
        (12, [3, 3], True),
        (12, [2, 4], True),
        (12, [4, 2], True),
        (12, [2, 4], False),
        (12, [2, 3, 4], [True, False]),
        (12, [2, 3, 4], [False, True]),
        (16, [4, 4, 4], [True, False]),
        (16, [8, 8], True),
        (16, [8, 8, 8], True),
        (8, [2, 2, 2], True),
        # Shuffles that do not yet mix everything: sensitive to the permutation's direction.
        (12, [4, 6], True),
        (12, [6, 6], True),
        (12, [6, 6, 6], True),
        (12, [6, 4, 6], [True, False]),
        (12, [4, 3, 6], [False, True]),
        (16, [8, 4, 4], [True, False]),
    ],
)
def test_group_connectivity_matches_jacobian_of_real_convs(channels, groups, shuffle):
    expected = conv_stack_pattern(channels, groups, shuffle)
    assert torch.equal(group_connectivity(channels, groups, shuffle), expected)


@pytest.mark.parametrize(
    ("groups", "shuffle", "error", "match"),
    [
        ([], False, ValueError, r"groups must be a sequence of ints >= 1, got \[\]"),
        ((), False, ValueError, r"got \(\)"),
        ([2, 2, 2], [True], ValueError, "2 bools"),
        ([2, 2], [True, False], ValueError, "1 bools"),
        ([2, 2], [1], TypeError, r"shuffle\[0\] must be True or False, got 1"),
        ([2, 2], 1, TypeError, r"shuffle must be a collections.abc.Sequence, got 1"),
        ([2, 5], False, ValueError, r"\b12\b.*\b5\b"),
        ([2, 0], False, ValueError, r"got \[2, 0\]"),
        ([2, 2.0], False, TypeError, r"got \[2, 2\.0\]"),
        ("22", False, TypeError, "'22'"),
        (True, False, TypeError, "True"),
    ],
)
def test_group_connectivity_bad_input(groups, shuffle, error, match):
    with pytest.raises(error, match=match):
        group_connectivity(12, groups, shuffle)


def test_group_connectivity_bad_channels():
    with pytest.raises(ValueError, match="channels must be an int >= 1, got 0"):
        group_connectivity(0, 1)


# group_conv_dense_weight


@pytest.mark.parametrize(
    ("c_in", "c_out", "k", "groups"),
    [(4, 8, 3, 2), (6, 6, 1, 3), (8, 8, 3, 8), (6, 12, 3, 1), (4, 6, 1, 2), (6, 3, 3, 3)],
)
def test_group_conv_dense_weight_matches_group_conv(c_in, c_out, k, groups):
    torch.manual_seed(0)
    conv = nn.Conv2d(c_in, c_out, k, padding=k // 2, groups=groups)
    x = torch.randn(2, c_in, 5, 5)
    with torch.no_grad():
        dense = group_conv_dense_weight(conv.weight, groups)
        assert dense.shape == (c_out, c_in, k, k)
        got = F.conv2d(x, dense, conv.bias, padding=k // 2)
        want = conv(x)
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.count_nonzero(dense).item() == conv.weight.numel()
    # Outside the diagonal blocks every entry is zero; inside, the group weights.
    out_per, in_per = c_out // groups, c_in // groups
    same_group = torch.tensor(
        [[o // out_per == i // in_per for i in range(c_in)] for o in range(c_out)]
    )
    assert (dense[~same_group] == 0).all()
    for g in range(groups):
        block = dense[g * out_per : (g + 1) * out_per, g * in_per : (g + 1) * in_per]
        assert torch.equal(block, conv.weight[g * out_per : (g + 1) * out_per])


def test_group_conv_dense_weight_keeps_dtype():
    w = torch.randn(4, 2, 1, 1, dtype=torch.float64)
    dense = group_conv_dense_weight(w, 2)
    assert dense.dtype == torch.float64
    assert dense[:, :, 0, 0].tolist() == [
        [w[0, 0, 0, 0].item(), w[0, 1, 0, 0].item(), 0.0, 0.0],
        [w[1, 0, 0, 0].item(), w[1, 1, 0, 0].item(), 0.0, 0.0],
        [0.0, 0.0, w[2, 0, 0, 0].item(), w[2, 1, 0, 0].item()],
        [0.0, 0.0, w[3, 0, 0, 0].item(), w[3, 1, 0, 0].item()],
    ]


@pytest.mark.parametrize(
    ("weight", "groups", "error", "match"),
    [
        (torch.zeros(4, 2, 3), 2, ValueError, r"weight must be a 4-d torch.Tensor, got shape"),
        (torch.zeros(4, 2, 1, 1, 1), 2, ValueError, "4-d"),
        ([[1.0]], 1, TypeError, r"weight must be a torch.Tensor, got \[\[1\.0\]\]"),
        (torch.zeros(4, 2, 1, 1), 0, ValueError, r"groups must be an int >= 1, got 0"),
        (torch.zeros(4, 2, 1, 1), 2.0, TypeError, r"2\.0"),
        (torch.zeros(6, 2, 1, 1), 4, ValueError, r"\b6\b.*\b4\b"),
    ],
)
def test_group_conv_dense_weight_bad_input(weight, groups, error, match):
    with pytest.raises(error, match=match):
        group_conv_dense_weight(weight, groups)


# Regressions: results are new tensors, never views that alias the input.


@pytest.mark.parametrize("shape", [(2, 4, 3, 3), (1, 4, 3, 3), (2, 8, 3, 3)])
def test_channel_shuffle_never_aliases_input(shape):
    x = rand(*shape)
    for g in (1, 2, shape[1]):
        y = channel_shuffle(x, g)
        assert y.untyped_storage().data_ptr() != x.untyped_storage().data_ptr(), g
        before = x.clone()
        y.zero_()
        assert torch.equal(x, before), f"writing into channel_shuffle(x, {g}) changed x"


@pytest.mark.parametrize("shape", [(2, 4, 3, 3), (1, 4, 3, 3), (3, 4, 1, 1)])
def test_shuffle_split_four_channels_is_fresh_and_contiguous(shape):
    x = rand(*shape)
    halves = shuffle_split(x)
    want = channel_split(channel_shuffle(x, 2))
    for got, ref in zip(halves, want):
        assert torch.equal(got, ref)
        assert got.is_contiguous()
        assert got.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()
