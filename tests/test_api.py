"""The public API in one place: what ``import shufflelib`` gives, and how every public function
answers bad input (the exception policy of :mod:`shufflelib.validate`).

A value of the wrong kind is a ``TypeError``, a value of the right kind that is not allowed is a
``ValueError``, and the message names the argument and shows the value. Each case below calls one
public function with one bad argument.
"""

import pytest
import torch
from torch import nn

import shufflelib
from shufflelib import (
    bench,
    cost,
    data,
    deploy,
    env,
    files,
    guidelines,
    ladder,
    layers,
    metrics,
    models,
    net,
    ops,
    prefetch,
    profiler,
    results,
    stats,
    sweeps,
    tables,
    train,
    validate,
)


def test_import_shufflelib_gives_every_module_and_the_chapter_names():
    for name in shufflelib.MODULES:
        module = getattr(shufflelib, name)
        assert module.__name__ == f"shufflelib.{name}"
    assert shufflelib.build is models.build and shufflelib.setup is env.setup
    assert shufflelib.names() == models.names()
    assert set(shufflelib.MODULES) <= set(dir(shufflelib))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        shufflelib.nope  # noqa: B018 - the attribute lookup is the test


def test_every_name_in_all_exists():
    for name in shufflelib.MODULES:
        module = getattr(shufflelib, name)
        for public in getattr(module, "__all__", []):
            assert hasattr(module, public), f"shufflelib.{name}.__all__ names {public!r}"


conv = nn.Conv2d(3, 4, 1)
table = tables.Table([{"model": "a", "MAdds": 1.0}], units={"MAdds": "M"})

# (call, error, argument, shown value)
CASES = [
    (lambda: env.setup(seed=-1), ValueError, "seed", "-1"),
    (lambda: env.setup(seed="0"), TypeError, "seed", "'0'"),
    (lambda: env.setup(device="xla"), ValueError, "device", "'xla'"),
    (lambda: env.pick_device(3), TypeError, "device", "3"),
    (lambda: env.machine_info("gpu"), ValueError, "device", "'gpu'"),
    (lambda: tables.Table([1, 2]), TypeError, "rows[0]", "1"),
    (lambda: table.column("b1"), ValueError, "column", "'b1'"),
    (lambda: table.unit("MAdds (M)"), ValueError, "column", "'MAdds (M)'"),
    (lambda: cost.madds(conv, (1, 3, "a", 4)), TypeError, "input_size", "(1, 3, 'a', 4)"),
    (lambda: cost.madds("conv", (1, 3, 4, 4)), TypeError, "model", "'conv'"),
    (lambda: cost.count_params(conv, trainable_only=1), TypeError, "trainable_only", "1"),
    (lambda: cost.stage_report(conv, (1, 3, 4, 4), depth=0), ValueError, "depth", "0"),
    (lambda: cost.mac_vs_groups(4, 4, 8, 100, [0]), ValueError, "groups", "[0]"),
    (lambda: bench.measure(len, (), min_run_time=0), ValueError, "min_run_time", "0"),
    (lambda: bench.measure(len, (), threads=1.0), TypeError, "threads", "1.0"),
    (
        lambda: bench.model_latency({"a": conv}, (1, 3, "a", 4)),
        TypeError,
        "input_size",
        "(1, 3, 'a', 4)",
    ),
    (lambda: bench.model_latency({"a": "conv"}), TypeError, "models['a']", "'conv'"),
    (lambda: bench.compare({"a": len}, (), baseline="b"), ValueError, "baseline", "'b'"),
    (lambda: bench.roofline_probe("cpu", matmul_size=8), ValueError, "matmul_size", "8"),
    (lambda: sweeps.group_conv_sweep(channels=0), ValueError, "channels", "0"),
    (lambda: sweeps.shuffle_benchmark((2, 8, 4)), ValueError, "input_size", "(2, 8, 4)"),
    (lambda: sweeps.mbconv_vs_fused((8,), batch=0), ValueError, "batch", "0"),
    (lambda: guidelines.g1_sweep(True), TypeError, "scale", "True"),
    (lambda: guidelines.FragmentBlock(0, 2, "series"), ValueError, "channels", "0"),
    (lambda: guidelines.g4_network(32, relu="no"), TypeError, "relu", "'no'"),
    (lambda: metrics.verdict(table), ValueError, "column", "'b1'"),
    (lambda: metrics.pareto_front(table, cost="b1"), ValueError, "column", "'b1'"),
    (lambda: metrics.published(max_mflops=-1), ValueError, "max_mflops", "-1"),
    (lambda: stats.verdict(stats.Interval(1, 1, 1, 6), claim="up"), ValueError, "claim", "'up'"),
    (lambda: stats.spread("ab"), TypeError, "values", "'ab'"),
    (lambda: results.settings("resnet"), ValueError, "label", "'resnet'"),
    (lambda: results.command("shufflenet_v2_x0_5", -1, "d"), ValueError, "seed", "-1"),
    (lambda: models.build("resnet18"), ValueError, "resnet18", "'resnet18'"),
    (lambda: models.build("mobilenet_v2", num_classes="10"), TypeError, "num_classes", "'10'"),
    (lambda: models.build("mobilenet_v2", width_mult=-1), ValueError, "width_mult", "-1"),
    (lambda: layers.make_divisible(32, min_value=-3), ValueError, "min_value", "-3"),
    (lambda: layers.init_weights("x"), TypeError, "model", "'x'"),
    (lambda: layers.ConvBNAct(4, 8, stride=1.0), TypeError, "stride", "1.0"),
    (lambda: ops.channel_shuffle(torch.ones(1, 4, 2, 2), 2.0), TypeError, "groups", "2.0"),
    (lambda: ops.group_connectivity(12, [2, 0]), ValueError, "groups", "[2, 0]"),
    (lambda: data.embedded("train", n=2.5), TypeError, "n", "2.5"),
    (lambda: data.loader(data.embedded("test", n=4), 0, True), ValueError, "batch_size", "0"),
    (
        lambda: prefetch.fetch(prefetch.DATASETS["cifar10"], ".", timeout=0),
        ValueError,
        "timeout",
        "0",
    ),
    (lambda: net.download("file:///x", "x", md5=5), TypeError, "md5", "5"),
    (lambda: net.probe("localhost", 0, 1.0), ValueError, "port", "0"),
    (lambda: deploy.fold_bn("net"), TypeError, "model", "'net'"),
    (lambda: deploy.compile(conv.train(), torch.ones(1, 3, 4, 4)), ValueError, "model", ".eval()"),
    (lambda: deploy.choose({}), ValueError, "times", "{}"),
    (  # a 1-channel input for a 3-channel network: named before any compile
        lambda: deploy.optimize(conv.eval(), torch.ones(1, 1, 4, 4), runtimes=()),
        ValueError,
        "example_input",
        "(1, 1, 4, 4)",
    ),
    (lambda: ladder.column("median", 0), ValueError, "batch", "0"),
    (
        lambda: profiler.profile_by_operator(conv, torch.ones(1, 3, 4, 4), runs=0),
        ValueError,
        "runs",
        "0",
    ),
    (lambda: validate.integer("n", 2, maximum=1), ValueError, "n", "2"),
    (lambda: train.lr_at(-5, 10, 1), ValueError, "step", "-5"),
    (lambda: train.lr_at(0, 0, 0), ValueError, "total", "0"),
    (lambda: train.param_groups(conv, -1), ValueError, "weight_decay", "-1"),
    (lambda: train.fit(conv, [1], 1), TypeError, "train_data", "[1]"),
    (lambda: train.TrainConfig.resolve(2, optimizer="adam"), ValueError, "optimizer", "'adam'"),
    (lambda: files.atomic_save({}, 3), TypeError, "path", "3"),
    (lambda: files.shared(None, " ", dict), ValueError, "key", "' '"),
    (lambda: files.shared(None, "k", 3), TypeError, "compute", "3"),
]


def _case_id(case):
    return f"{case[2]}={case[3]}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_bad_input_names_the_argument_and_the_value(case):
    call, error, argument, shown = case
    with pytest.raises(error) as raised:
        call()
    message = str(raised.value)
    assert argument in message, message
    assert shown in message, message
    assert type(raised.value) is error, "one policy: TypeError for kind, ValueError for value"


def test_no_call_changes_state_it_was_not_asked_to_change():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cost.madds(net, (1, 3, 4, 4))
    cost.mac(net, (1, 3, 4, 4))
    cost.layer_report(net, (1, 3, 4, 4))
    bench.model_latency({"n": net}, (1, 3, 4, 4), device="cpu", rounds=1, min_run_time=0.01)
    assert net.training and net[1].training
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "no running stat moved"
    generator_state = torch.get_rng_state()
    cost.madds(net, (1, 3, 4, 4))
    assert torch.equal(generator_state, torch.get_rng_state()), "counting draws no random number"
