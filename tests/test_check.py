"""shufflelib.check: PASS lines for right answers, CheckFailed naming the value for wrong ones."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from shufflelib import check
from shufflelib.check import CheckFailed


def test_check_failed_is_an_assertion_error():
    assert issubclass(CheckFailed, AssertionError)


# --- equal ------------------------------------------------------------------------------------


def test_equal_numbers_pass_and_print(capsys):
    assert check.equal(5_684_000, 5_684_000, "the MAdds") is None
    assert capsys.readouterr().out == "PASS: the MAdds is 5,684,000, as expected\n"


def test_equal_numbers_fail_with_both_values():
    with pytest.raises(CheckFailed, match=r"^FAIL: the MAdds is 5,684,001, expected 5,684,000$"):
        check.equal(5_684_001, 5_684_000, "the MAdds")


def test_equal_sequences_name_the_first_wrong_item(capsys):
    check.equal((1, 2, 3), [1, 2, 3], "the widths")
    assert "PASS: the widths" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match=r"differs at item 1: yours 5, expected 2"):
        check.equal([1, 5, 3], [1, 2, 3], "the widths")
    with pytest.raises(CheckFailed, match=r"has 2 items, expected 3"):
        check.equal([1, 2], [1, 2, 3], "the widths")


def test_equal_tensors(capsys):
    x = torch.arange(12).view(1, 12, 1, 1)
    check.equal(x.clone(), x, "your shuffle")
    assert capsys.readouterr().out == (
        "PASS: your shuffle equals the expected tensor of shape (1, 12, 1, 1)\n"
    )
    y = x.clone()
    y[0, 7, 0, 0] = 99
    with pytest.raises(CheckFailed) as err:
        check.equal(y, x, "your shuffle")
    assert str(err.value) == (
        "FAIL: your shuffle differs at 1 of 12 positions; first at index (0, 7, 0, 0): "
        "yours 99, expected 7"
    )
    with pytest.raises(CheckFailed, match=r"has shape \(12,\), expected \(1, 12, 1, 1\)"):
        check.equal(x.flatten(), x, "your shuffle")


def test_equal_tensor_against_a_list():
    check.equal(torch.tensor([0, 2, 1]), [0, 2, 1], "the permutation")
    with pytest.raises(CheckFailed, match="first at index \\(1,\\): yours 1, expected 2"):
        check.equal(torch.tensor([0, 1, 2]), [0, 2, 1], "the permutation")


def test_equal_number_where_a_tensor_is_expected():
    with pytest.raises(CheckFailed, match=r"is 3, expected a tensor of shape \(2,\)"):
        check.equal(3, torch.tensor([1, 2]), "your output")


# --- close ------------------------------------------------------------------------------------


def test_close_numbers(capsys):
    check.close(0.1 + 0.2, 0.3, "the sum")
    assert capsys.readouterr().out.startswith("PASS: the sum is 0.3, within")
    with pytest.raises(CheckFailed, match=r"the ratio is 4.3, expected 4.21053 \(difference"):
        check.close(4.3, 240 / 57, "the ratio", rtol=1e-3)
    check.close(4.3, 240 / 57, "the ratio", rtol=0.05)


def test_close_nan_fails():
    with pytest.raises(CheckFailed, match="is nan"):
        check.close(float("nan"), 1.0, "the value")
    t = torch.ones(3)
    t[1] = float("nan")
    with pytest.raises(CheckFailed, match=r"1 of 3 values .* at index \(1,\)"):
        check.close(t, torch.ones(3), "the tensor")


def test_close_tensors_report_the_worst_element():
    expected = torch.zeros(2, 3, 4)
    actual = expected.clone()
    actual[1, 2, 3] = 0.5
    actual[0, 0, 0] = 1e-7  # within atol: not counted
    with pytest.raises(CheckFailed) as err:
        check.close(actual, expected, "your convolution")
    message = str(err.value)
    assert message.startswith("FAIL: your convolution differs from the expected tensor of shape")
    assert "1 of 24 values" in message
    assert "largest difference is 0.5 at index (1, 2, 3) (yours 0.5, expected 0)" in message


def test_close_tensors_pass_within_tolerance(capsys):
    a = torch.randn(4, 5)
    check.close(a + 1e-7, a, "the output")
    out = capsys.readouterr().out
    assert out.startswith("PASS: the output matches the expected tensor of shape (4, 5)")


def test_close_shape_mismatch():
    with pytest.raises(CheckFailed, match=r"has shape \(4, 5\), expected \(5, 4\)"):
        check.close(torch.zeros(4, 5), torch.zeros(5, 4), "the output")


def test_close_bad_arguments():
    with pytest.raises(ValueError, match="rtol must be a finite number >= 0, got -1"):
        check.close(1.0, 1.0, "x", rtol=-1)
    with pytest.raises(TypeError, match="atol must be a finite number >= 0, got 'a'"):
        check.close(1.0, 1.0, "x", atol="a")
    with pytest.raises(TypeError, match="what must be a non-empty str"):
        check.close(1.0, 1.0, 3)
    with pytest.raises(ValueError, match="what must be a non-empty str, got ' '"):
        check.close(1.0, 1.0, " ")
    with pytest.raises(TypeError, match="must be a number or a tensor to compare, got 'one'"):
        check.close("one", 1.0, "x")
    with pytest.raises(TypeError, match="expected must be a tensor, a number or a nested list"):
        check.close(torch.ones(2), "two", "x")


# --- shape ------------------------------------------------------------------------------------


def test_shape(capsys):
    check.shape(torch.zeros(2, 24, 8, 8), (2, 24, 8, 8), "the output")
    assert capsys.readouterr().out == "PASS: the output has shape (2, 24, 8, 8)\n"
    check.shape(torch.zeros(5, 24, 8, 8), (None, 24, 8, 8), "the output")
    with pytest.raises(CheckFailed, match=r"has shape \(2, 24, 4, 4\), expected \(any, 24, 8, 8\)"):
        check.shape(torch.zeros(2, 24, 4, 4), (None, 24, 8, 8), "the output")
    with pytest.raises(CheckFailed, match=r"has shape \(2, 24\), expected \(2, 24, 1\)"):
        check.shape(torch.zeros(2, 24), (2, 24, 1), "the output")


def test_shape_bad_arguments():
    with pytest.raises(TypeError, match=r"must be a torch.Tensor .* got \[1, 2\]"):
        check.shape([1, 2], (2,), "the list")
    with pytest.raises(ValueError, match="expected must hold ints >= 0 or None, got \\(2, -1\\)"):
        check.shape(torch.zeros(2, 3), (2, -1))
    with pytest.raises(ValueError, match="expected must be a shape"):
        check.shape(torch.zeros(2, 3), "2, 3")


# --- params -----------------------------------------------------------------------------------


def test_params(capsys):
    block = nn.Sequential(nn.Conv2d(16, 96, 1, bias=False), nn.BatchNorm2d(96))
    check.params(block, 16 * 96 + 2 * 96, "your block")
    assert capsys.readouterr().out == "PASS: your block has 1,728 parameters, as expected\n"
    with pytest.raises(CheckFailed) as err:
        check.params(block, 1_536, "your block")
    assert str(err.value) == (
        "FAIL: your block has 1,728 parameters, expected 1,536 (by child: 0: 1,536, 1: 192)"
    )


def test_params_bad_arguments():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got list"):
        check.params([], 0)
    with pytest.raises(ValueError, match="expected must be an int >= 0 .* got 1.5"):
        check.params(nn.Linear(2, 2), 1.5)


# --- same_function ----------------------------------------------------------------------------


def test_same_function_runs_modules_in_eval_mode_and_restores_it(capsys):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.Dropout(0.5)).train()
    x = torch.randn(2, 3, 5, 5)

    def by_hand(t):
        conv, bn = net[0], net[1]
        y = nn.functional.conv2d(t, conv.weight, conv.bias)
        return nn.functional.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias)

    check.same_function(by_hand, net, x, what="your forward")
    assert capsys.readouterr().out.startswith("PASS: your forward matches")
    assert net.training and net[1].training and net[2].training


def test_same_function_reports_a_wrong_output():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    with pytest.raises(CheckFailed, match="your shuffle differs from the expected tensor"):
        check.same_function(lambda t: t, lambda t: t.flip(1), x, what="your shuffle")


def test_same_function_tuples():
    x = torch.randn(1, 4, 2, 2)
    check.same_function(lambda t: t.chunk(2, 1), lambda t: (t[:, :2], t[:, 2:]), x)
    with pytest.raises(CheckFailed, match="your split, output 1 differs"):
        check.same_function(
            lambda t: (t[:, :2], t[:, :2]), lambda t: t.chunk(2, 1), x, what="your split"
        )
    with pytest.raises(CheckFailed, match="expected 2 outputs"):
        check.same_function(lambda t: t, lambda t: t.chunk(2, 1), x, what="your split")


def test_same_function_bad_arguments():
    with pytest.raises(TypeError, match="candidate must be callable"):
        check.same_function(3, lambda t: t, torch.ones(1))
    with pytest.raises(ValueError, match="needs at least one input"):
        check.same_function(lambda t: t, lambda t: t)
