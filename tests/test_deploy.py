"""shufflelib.deploy: each step keeps the outputs and the caller's model; a call adds nothing.

Chapter 11. Its ladder is tested in test_ladder.py, the operator profile in test_profiler.py.
"""

import copy
import logging
import warnings

import pytest
import torch
import torchvision
from torch import nn

import shufflelib.models as zoo
from shufflelib import deploy
from shufflelib.layers import ConvBNAct, randomise_batchnorm
from shufflelib.models.shufflenet_v2 import ShuffleNetV2, ShuffleV2Unit
from shufflelib.ops import channel_shuffle, channel_split
from shufflelib.tables import Table

pytestmark = pytest.mark.usefixtures("one_thread")


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def rel_error(got, want):
    return ((got - want).abs().max() / want.abs().max().clamp(min=1.0)).item()


def with_batch_statistics(model, seed=0):
    """Random BatchNorm affine parameters, running statistics measured on random images.

    Random statistics alone can switch every ReLU off, so that a deep network returns the same
    output for every image; statistics of real activations keep each layer doing something.
    """
    randomise_batchnorm(model, seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the batches below
    model.train()
    with torch.no_grad():
        for k in range(2):
            model(rand(8, 3, 32, 32, seed=seed + k))
    return model.eval()


def tiny_shufflenet(seed=0):
    """A small network with a stem, a stride-2 and a stride-1 ShuffleNet V2 unit and a head."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        ConvBNAct(3, 8, 3, 2),
        ShuffleV2Unit(8, 16, 2),
        ShuffleV2Unit(16, 16, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    )
    return with_batch_statistics(model, seed)


@pytest.fixture
def fresh_dynamo():
    """Each compiling test starts and ends with torch.compile's caches empty."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


# ---------------------------------------------------------------------------------------------
# fold_bn: every family of the zoo, small instances, random BatchNorm statistics

FAMILIES = [
    ("shufflenet_v1_g3_x0_5", {}),
    ("shufflenet_v2_x0_5", {}),
    ("mobilenet_v2", {"width_mult": 0.25}),
    ("efficientnet_v2_t", {}),
]


@pytest.mark.parametrize("name, kw", FAMILIES, ids=[n for n, _ in FAMILIES])
def test_fold_bn_keeps_outputs_on_every_zoo_family(name, kw):
    torch.manual_seed(0)
    model = with_batch_statistics(zoo.build(name, num_classes=10, small_input=True, **kw), 1)
    before = copy.deepcopy(model.state_dict())
    n_bn = deploy.count_batchnorm(model)
    x = rand(2, 3, 32, 32)
    folded = deploy.fold_bn(model)
    with torch.no_grad():
        want, got = model(x), folded(x)
    assert n_bn > 0 and deploy.count_batchnorm(folded) == 0
    # float32: equal up to rounding (relative to the largest logit when that exceeds 1) ...
    assert rel_error(got, want) <= 1e-5
    assert (want[0] - want[1]).abs().max() > 1e-2  # real outputs: they depend on the image
    # ... and in float64 the folded arithmetic is exactly the original's
    double = deploy.fold_bn(copy.deepcopy(model).double())
    with torch.no_grad():
        assert (double(x.double()) - model.double()(x.double())).abs().max() <= 1e-10
    assert isinstance(folded, type(model)) and not folded.training
    # the original is untouched: same tensors, still with its BatchNorms
    assert deploy.count_batchnorm(model) == n_bn
    after = model.float().state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_fold_bn_on_torchvision_and_on_a_conv_with_bias():
    tv = randomise_batchnorm(torchvision.models.shufflenet_v2_x0_5(num_classes=10), 2).eval()
    x = rand(2, 3, 64, 64)
    folded = deploy.fold_bn(tv)
    assert deploy.count_batchnorm(folded) == 0
    with torch.no_grad():
        assert rel_error(folded(x), tv(x)) <= 1e-5
    net = randomise_batchnorm(nn.Sequential(nn.Conv2d(3, 4, 3, bias=True), nn.BatchNorm2d(4)), 3)
    net.eval()
    with torch.no_grad():
        nn.init.normal_(net[0].bias)
        folded = deploy.fold_bn(net)
        assert isinstance(folded[1], nn.Identity)
        assert (folded(x) - net(x)).abs().max() <= 1e-5


def test_fold_bn_leaves_a_batchnorm_with_no_convolution_before_it():
    net = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    net = randomise_batchnorm(net, 4).eval()
    folded = deploy.fold_bn(net)
    assert deploy.count_batchnorm(folded) == 1  # the first one: nothing to fold it into
    x = rand(1, 3, 8, 8)
    with torch.no_grad():
        assert (folded(x) - net(x)).abs().max() <= 1e-5


def test_fold_bn_refuses_training_mode():
    model = tiny_shufflenet().train()
    with pytest.raises(ValueError, match="eval mode.*model.eval"):
        deploy.fold_bn(model)


# ---------------------------------------------------------------------------------------------
# channels-last and the fast ShuffleNet V2


def test_to_channels_last_changes_memory_not_values():
    model = tiny_shufflenet()
    x = rand(2, 3, 32, 32)
    cl = deploy.to_channels_last(model)
    assert cl[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    assert model[0][0].weight.is_contiguous()  # the original keeps its layout
    with torch.no_grad():
        assert rel_error(cl(x), model(x)) <= 1e-5
        assert cl[0](x).is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("channels_last", [False, True])
def test_shuffled_halves_equal_split_of_shuffled_concat(channels_last):
    a, b = rand(2, 12, 5, 5, seed=1), rand(2, 12, 5, 5, seed=2)
    if channels_last:
        a, b = (t.contiguous(memory_format=torch.channels_last) for t in (a, b))
    want = channel_shuffle(torch.cat((a, b), 1), 2)
    first, second = deploy.shuffled_halves(a, b)
    w1, w2 = channel_split(want, 2)
    assert torch.equal(first, w1) and torch.equal(second, w2)
    assert torch.equal(deploy.shuffled_halves(a, b, split=False), want)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for half in (first, second):  # the next convolution can read them without a copy
        assert half.is_contiguous(memory_format=fmt)


@pytest.mark.parametrize("stride, c_in", [(1, 16), (2, 8)])
def test_fast_unit_equals_the_chapter_7_unit(stride, c_in):
    unit = randomise_batchnorm(ShuffleV2Unit(c_in, 16, stride), 5).eval()
    fast = deploy.FastShuffleV2Unit(c_in, 16, stride, merge_output=False).eval()
    fast.load_state_dict(unit.state_dict(), strict=True)
    x = rand(2, c_in, 8, 8)
    with torch.no_grad():
        want = unit(x)
        first, second = fast(x)
        assert torch.equal(torch.cat((first, second), 1), want)
        if stride == 1:  # a stride-1 unit also takes the pair of halves
            pair = channel_split(x, 2)
            assert torch.equal(torch.cat(fast(tuple(t.contiguous() for t in pair)), 1), want)
        fast.merge_output = True
        assert torch.equal(fast(x), want)


@pytest.mark.parametrize("channels_last", [False, True])
def test_fast_shufflenet_v2_takes_torchvision_weights(channels_last):
    tv = randomise_batchnorm(torchvision.models.shufflenet_v2_x0_5(), 6).eval()
    fast = deploy.fast_shufflenet_v2(0.5, channels_last=channels_last).eval()
    fast.load_state_dict(tv.state_dict(), strict=True)
    assert fast.state_dict().keys() == tv.state_dict().keys()
    x = rand(2, 3, 64, 64)
    with torch.no_grad():
        want = tv(x)
        assert rel_error(fast(x), want) <= 1e-5
        assert rel_error(deploy.fold_bn(fast)(x), want) <= 1e-5
    ours = zoo.build("shufflenet_v2_x0_5")
    assert isinstance(fast, ShuffleNetV2) and fast.stages_out_channels == ours.stages_out_channels
    layouts = [u.merge_output for u in fast.stage3]
    assert layouts == [False] * 7 + [True]  # pairs within a stage, one tensor at its end


def test_as_fast_shufflenet_and_steps_keep_outputs():
    torch.manual_seed(0)
    tv = with_batch_statistics(torchvision.models.shufflenet_v2_x0_5(num_classes=10), 3)
    fast = deploy.as_fast_shufflenet(tv)
    assert isinstance(fast, deploy.FastShuffleNetV2) and not fast.training
    assert deploy.as_fast_shufflenet(tiny_shufflenet()) is None  # not a ShuffleNet V2
    ours = zoo.build("shufflenet_v2_x0_5", num_classes=10).eval()
    ours.load_state_dict(tv.state_dict())
    variants = deploy.steps(ours)
    assert list(variants) == ["ours eager", "+ BN folding", "+ channels-last"]
    assert isinstance(variants["+ channels-last"], deploy.FastShuffleNetV2)
    x = rand(2, 3, 64, 64)
    with torch.no_grad():
        want = tv(x)
        assert (want[0] - want[1]).abs().max() > 1e-2
        assert rel_error(fast(x), want) <= 1e-5
        for name, model in variants.items():
            assert rel_error(model(x), want) <= 1e-5, name
    assert variants["ours eager"] is ours and deploy.count_batchnorm(ours) > 0


@pytest.mark.parametrize("name", ["repvgg_a0", "mobileone_s0"])
def test_steps_re_parameterise_repvgg_and_mobileone(name):
    torch.manual_seed(0)
    ours = randomise_batchnorm(zoo.build(name, num_classes=10, small_input=True), 1).eval()
    variants = deploy.steps(ours)
    assert list(variants) == ["ours eager", "+ re-parameterised", "+ channels-last"]
    folded = variants["+ re-parameterised"]
    assert deploy.count_batchnorm(folded) == 0 and deploy.count_batchnorm(ours) > 0
    assert str(deploy.folded(ours)) == str(folded)  # the same deployed form
    assert deploy.reparameterisable(ours) and not deploy.reparameterisable(folded)
    assert str(deploy.for_export(ours)) == str(folded) and deploy.for_export(folded) is folded
    assert not any(type(m).__name__ == "RepBlock" for m in folded.modules())
    x = rand(2, 3, 32, 32)
    with torch.no_grad():
        want = ours(x)
        for model in variants.values():
            assert rel_error(model(x), want) <= 1e-4


def test_fast_shufflenet_v2_bad_arguments():
    with pytest.raises(ValueError, match="width must be one of .*got 0.75"):
        deploy.fast_shufflenet_v2(0.75)
    with pytest.raises(TypeError, match="channels_last must be True or False, got 'yes'"):
        deploy.fast_shufflenet_v2(1.0, channels_last="yes")


# ---------------------------------------------------------------------------------------------
# torch.compile, torch.export, int8


def test_compile_keeps_outputs(fresh_dynamo):
    # The same graph and shape as optimize compiles below: Inductor's cache compiles it once.
    model = tiny_shufflenet()
    x = rand(4, 3, 32, 32)
    compiled = deploy.compile(deploy.to_channels_last(deploy.fold_bn(model)), x)
    assert compiled.compile_seconds > 0
    assert compiled.options == {"freezing": True}
    with torch.no_grad():  # a call from outside inference mode runs the same compiled graph
        want = model(x)
        assert rel_error(compiled(x), want) <= 1e-5


class Counter:
    """Wraps a function or a class's __init__ and counts the calls that go through it."""

    def __init__(self, monkeypatch, owner, name):
        self.calls = 0
        original = getattr(owner, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)


def test_a_compiled_call_runs_the_compiled_code_and_nothing_else(fresh_dynamo, monkeypatch):
    """Inductor's configuration patch, the logging and warnings filters are held while warming
    up; once warm, a call enters none of them (nor an inference-mode block of its own, when
    called in inference mode as every timing does) and compiles nothing."""
    model = tiny_shufflenet()
    x = rand(4, 3, 32, 32)
    compiled = deploy.compile(model, x)
    inductor_config = type(torch._inductor.config)
    counters = {
        "Inductor config patch": Counter(monkeypatch, inductor_config, "patch"),
        "logging level": Counter(monkeypatch, logging.Logger, "setLevel"),
        "warnings filter": Counter(monkeypatch, warnings.catch_warnings, "__init__"),
    }
    graphs = torch._dynamo.utils.counters["stats"]["unique_graphs"]
    with torch.inference_mode():
        counters["inference mode"] = Counter(monkeypatch, torch, "inference_mode")
        outputs = [compiled(x) for _ in range(5)]
        want = model(x)
    assert {k: c.calls for k, c in counters.items()} == dict.fromkeys(counters, 0)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == graphs  # nothing compiled
    for out in outputs:
        assert rel_error(out, want) <= 1e-5


def test_compiled_refuses_to_compile_outside_warm_up(fresh_dynamo):
    """A call on an input it was not compiled for would compile without the options (and inside
    whatever is being timed): it fails and says what to do; warm_up then compiles for it."""
    model = tiny_shufflenet()
    compiled = deploy.compile(model, rand(4, 3, 32, 32))
    seconds = compiled.compile_seconds
    other = rand(2, 3, 32, 32)
    with pytest.raises(RuntimeError, match="not compiled for.*warm_up"):
        compiled(other)
    assert compiled.warm_up(other) > 0 and compiled.compile_seconds > seconds
    with torch.no_grad():
        assert rel_error(compiled(other), model(other)) <= 1e-5


def test_compile_freezes_the_weights_at_every_warm_up(fresh_dynamo):
    """With freezing the weights are constants of the compiled code: changing the model's
    weights afterwards changes nothing, on the first shape and on one warmed up later."""
    model = tiny_shufflenet()
    x, other = rand(4, 3, 32, 32), rand(2, 3, 32, 32)
    with torch.no_grad():
        want, want_other = model(x), model(other)
    frozen = deploy.compile(model, x)
    frozen.warm_up(other)
    live = deploy.compile(model, x, freezing=False)
    with torch.no_grad():
        model[-1].weight.mul_(-1.0)  # the classifier, negated
        assert rel_error(frozen(x), want) <= 1e-5
        assert rel_error(frozen(other), want_other) <= 1e-5
        assert rel_error(live(x), model(x)) <= 1e-5  # unfrozen: reads the weights it is given
        assert rel_error(live(x), want) > 1e-2


def test_export_roundtrip_is_exact():
    assert deploy.export_roundtrip(tiny_shufflenet(), rand(2, 3, 32, 32)) <= 1e-6


def test_quantize_int8_agrees_with_the_float_model(fresh_dynamo):
    pytest.importorskip("torchao", reason="int8 needs torchao (in requirements.txt)")
    model = deploy.fold_bn(tiny_shufflenet(seed=7))
    calibration = rand(64, 3, 32, 32, seed=8)
    held_out = rand(128, 3, 32, 32, seed=9)
    q = deploy.quantize_int8(model, calibration, eval_data=held_out, batch_size=32)
    assert q.agreement_images == 128
    with torch.no_grad():
        want = model(held_out)
        fake = q.reference(held_out)  # PT2E's graph: int8 arithmetic, simulated
        kernels = torch.cat([q(x) for x in held_out.split(32)])  # Inductor's int8 kernels
    agreement = (want.argmax(1) == kernels.argmax(1)).float().mean().item()
    assert q.agreement == pytest.approx(agreement)
    assert agreement >= 0.9
    # the quantised model really rounds (not float), but stays close
    error = rel_error(fake, want)
    assert 1e-5 < error < 0.1
    assert rel_error(kernels, fake) < 0.05
    ops = {str(n.target) for n in q.reference.graph.nodes}
    assert any("quantize_per_tensor" in op for op in ops)


def test_quantize_int8_leaves_max_pooling_in_float():
    pytest.importorskip("torchao", reason="int8 needs torchao (in requirements.txt)")
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, 1), nn.Conv2d(8, 4, 1)
    ).eval()
    q = deploy.quantize_int8(model, rand(16, 3, 16, 16, seed=1), compiled=False)
    pools = [n for n in q.reference.graph.nodes if "max_pool2d" in str(n.target)]
    assert len(pools) == 1
    # int8 pooling would read a dequantised int8 tensor; here it reads the float32 ReLU, and its
    # output is quantised for the next convolution
    assert "dequantize" not in str(pools[0].args[0].target)
    assert any("quantize_per_tensor" in str(u.target) for u in pools[0].users)


def test_flips_counts_changed_predictions_and_their_margins():
    # float: class 0 with probabilities (0.9, 0.1) on 3 images, (0.55, 0.45) on 1 image;
    # "int8" flips exactly the hesitant image to class 1
    logits = torch.tensor([[0.9, 0.1]] * 3 + [[0.55, 0.45]]).log()

    def float_model(x):
        return logits[x[:, 0, 0, 0].long()]

    def int8_model(x):
        out = float_model(x).clone()
        out[x[:, 0, 0, 0] == 3] = torch.tensor([0.0, 1.0])
        return out

    images = torch.arange(4.0)[:, None, None, None].expand(4, 3, 2, 2).contiguous()
    labels = torch.tensor([0, 0, 1, 1])
    t = deploy.flips(float_model, int8_model, images, labels, batch_size=3)
    every, flipped, kept = t
    assert [r["images"] for r in t] == ["all", "flipped", "kept"]
    assert (every["count"], flipped["count"], kept["count"]) == (4, 1, 3)
    assert every["float32 accuracy"] == 0.5 and every["int8 accuracy"] == 0.75
    assert flipped["median margin"] == pytest.approx(0.1)
    assert kept["median margin"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="labels must be a tensor of 4 class indices, got 3"):
        deploy.flips(float_model, int8_model, images, labels[:3])
    with pytest.raises(TypeError, match="int8_model must be callable, got 'int8'"):
        deploy.flips(float_model, "int8", images, labels)


def test_top1_agreement_counts_equal_predictions():
    scores = torch.zeros(10, 1, 1, 3)
    scores[torch.arange(10), 0, 0, torch.arange(10) % 3] = 1.0
    scores[8:, 0, 0] = torch.tensor([1.0, 0.0, 0.5])  # two images where "b" prefers class 2

    def a(t):
        return t[:, 0, 0]

    def b(t):
        return (t[:, 0, 0] > 0).float() + torch.tensor([0.0, 0.1, 0.2])  # highest nonzero class

    assert deploy.top1_agreement(a, a, scores) == 1.0
    assert deploy.top1_agreement(a, b, scores) == pytest.approx(0.8)
    pairs = [scores[:4], (scores[4:], torch.zeros(6))]  # (images, labels) batches work too
    assert deploy.top1_agreement(a, b, pairs, batch_size=3) == pytest.approx(0.8)


# ---------------------------------------------------------------------------------------------
# optimize and choose


def test_optimize_returns_a_faster_callable_with_the_same_outputs(fresh_dynamo):
    model = tiny_shufflenet()
    x = rand(4, 3, 32, 32)
    best = deploy.optimize(model, x, runtimes=(), rounds=1, max_rounds=1, min_run_time=0.02)
    assert best.steps[0] == "BN folding"
    assert set(best.timings.column("name")) == {"eager, NCHW", "eager, channels-last", "compiled"}
    with torch.no_grad():
        assert rel_error(best(x), model(x)) <= 1e-4
    assert best.max_error <= 1e-4 and best.agreement is None
    assert (best.backend, best.precision) == ("PyTorch", "float32")
    assert best.timings.column("backend") == ["PyTorch"] * 3
    assert deploy.count_batchnorm(model) > 0  # the model given is untouched
    # One round gives no interval: nothing is faster beyond noise, the simplest is kept.
    assert best.steps == ["BN folding"] and best.reason.startswith("kept eager, NCHW; ")
    assert "not faster beyond noise" in best.reason
    assert best.compile_seconds == 0.0  # the kept candidate is not a compiled one


def test_int8_and_optimized_calls_are_their_backends_call(monkeypatch):
    """Int8Model and Optimized add nothing to a call: no inference-mode block, no copy."""
    seen = []

    def backend(x):
        seen.append(x)
        return x * 2

    wrappers = [
        deploy.Int8Model(backend, nn.Identity(), 1.0, 1, 0.0, 0.0),
        deploy.Optimized(backend, ["BN folding"], Table(), 0.0),
    ]
    entered = Counter(monkeypatch, torch, "inference_mode")
    x = rand(1, 3, 4, 4)
    for wrapper in wrappers:
        assert torch.equal(wrapper(x), x * 2) and seen[-1] is x
    assert entered.calls == 0 and len(seen) == 2


def test_choose_keeps_a_more_complex_candidate_only_when_faster_beyond_noise():
    flat = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.02, 0.98]
    times = {
        "simple": flat,
        "layout": [t * r for t, r in zip(flat, (1.1, 0.9, 1.05, 0.95, 1.0, 1.08, 0.92, 1.0))],
        "compiled": [t * 0.6 for t in flat],
        "int8": [t * 0.6 * r for t, r in zip(flat, (0.99, 1.01, 1.0, 0.98, 1.02, 1.0, 0.99, 1.01))],
    }
    kept, reason = deploy.choose(times)
    assert kept == "compiled"
    assert "layout / simple time 1.00 [0.90, 1.10]: not faster beyond noise" in reason
    assert "compiled / simple time 0.60 [0.60, 0.60]: faster, kept" in reason
    assert "int8 / compiled time" in reason and reason.startswith("kept compiled; ")
    assert deploy.choose({"only": [1.0] * 6}) == ("only", "kept only, the only one")


def test_challenger_is_the_candidate_the_noise_may_hide_behind_the_kept_one():
    flat = [1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.02, 0.98]
    wobble = (1.1, 0.8, 1.0, 0.9, 1.05, 0.85, 0.95, 0.9)  # median 0.92, interval across 1
    times = {
        "compiled": flat,
        "runtime": [t * r for t, r in zip(flat, wobble)],
        "slower": [t * 1.3 for t in flat],
    }
    kept, _ = deploy.choose(times)
    assert kept == "compiled"  # the runtime is not faster beyond noise ...
    assert deploy.challenger(times, kept) == "runtime"  # ... but may be: time the two again
    assert deploy.challenger({"a": flat, "b": [t * 1.2 for t in flat]}, "a") is None
    assert deploy.challenger({"only": flat}, "only") is None
    with pytest.raises(ValueError, match="kept must be one of the candidates"):
        deploy.challenger(times, "int8")


# ---------------------------------------------------------------------------------------------
# the caller's model: every public function leaves it as it was


def snapshot(model):
    """Everything a function could change in a model without saying so."""
    modes = tuple((n, m.training) for n, m in model.named_modules())
    tensors = tuple(
        (n, t.device, t.dtype, t.stride(), t.detach().clone())
        for n, t in [*model.named_parameters(), *model.named_buffers()]
    )
    return modes, tensors


def assert_same(before, after):
    assert before[0] == after[0]  # every submodule keeps its train/eval mode
    assert [t[:4] for t in before[1]] == [t[:4] for t in after[1]]  # device, dtype, layout
    assert all(torch.equal(b[4], a[4]) for b, a in zip(before[1], after[1]))  # values


def test_the_callers_model_keeps_its_mode_device_layout_and_weights(fresh_dynamo):
    pytest.importorskip("torchao", reason="int8 needs torchao (in requirements.txt)")
    model = tiny_shufflenet()
    x = rand(4, 3, 32, 32)
    before = snapshot(model)
    deploy.fold_bn(model)
    deploy.to_channels_last(model)
    deploy.steps(model)
    deploy.compile(model, x)(x)
    deploy.export_roundtrip(model, x)
    deploy.quantize_int8(model, x, compiled=False)
    deploy.optimize(model, x, runtimes=(), rounds=1, max_rounds=1, min_run_time=0.01)
    assert_same(before, snapshot(model))
    # functions that accept a model in training mode leave it there
    net = with_batch_statistics(zoo.build("shufflenet_v2_x0_5", num_classes=10), 2).train()
    before = snapshot(net)
    deploy.as_fast_shufflenet(net)
    deploy.to_channels_last(net)
    deploy.count_batchnorm(net)
    assert_same(before, snapshot(net))


def tiny_optimize(**kwargs):
    return deploy.optimize(tiny_shufflenet(), torch.ones(1, 3, 8, 8), **kwargs)


NEEDS_IMAGES = r"precisions \['int8'\] need calibration_data \(images"
NOT_NAMES = "must be a non-empty sequence of distinct names"
ONLY_WITH = "calibration_data and eval_data are used only when precisions allows bfloat16 or int8"


# ---------------------------------------------------------------------------------------------
# bad input: TypeError for the wrong kind of value, ValueError for a value not allowed; the
# message names the argument and the value; nothing is computed first


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (
            lambda: deploy.fold_bn("net"),
            TypeError,
            "model must be a torch.nn.Module in eval mode, got 'net'",
        ),
        (lambda: deploy.to_channels_last(3), TypeError, "model must be a torch.nn.Module, got 3"),
        (
            lambda: deploy.count_batchnorm(None),
            TypeError,
            "model must be a torch.nn.Module, got None",
        ),
        (
            lambda: deploy.steps(tiny_shufflenet().train()),
            ValueError,
            "model must be .* in eval mode, got a Sequential module with",
        ),
        (
            lambda: deploy.shuffled_halves(rand(1, 4, 2, 2), rand(1, 6, 2, 2)),
            ValueError,
            r"b must have a's shape \(1, 4, 2, 2\), got \(1, 6, 2, 2\)",
        ),
        (
            lambda: deploy.fast_shufflenet_v2(True),
            TypeError,
            "width must be a finite number, got True",
        ),
        (
            lambda: deploy.FastShuffleV2Unit(8, 16, 2, merge_output=1),
            TypeError,
            "merge_output must be True or False, got 1",
        ),
        (
            lambda: deploy.compile(tiny_shufflenet(), [1, 2]),
            TypeError,
            r"example_input must be a torch.Tensor, got \[1, 2\]",
        ),
        (
            lambda: deploy.compile(tiny_shufflenet(), torch.ones(3, 4)),
            ValueError,
            r"example_input must be a 4-d torch.Tensor, got shape \(3, 4\)",
        ),
        (
            lambda: deploy.compile(tiny_shufflenet(), torch.ones(1, 3, 8, 8, dtype=torch.long)),
            ValueError,
            "example_input must be a floating-point torch.Tensor, got dtype torch.int64",
        ),
        (
            lambda: deploy.compile(42, torch.ones(1, 3, 8, 8)),
            TypeError,
            "model must be callable, got 42",
        ),
        (
            lambda: deploy.compile(tiny_shufflenet(), torch.ones(1, 3, 8, 8), dynamic="no"),
            TypeError,
            "dynamic must be True or False, got 'no'",
        ),
        (
            lambda: deploy.export_roundtrip(tiny_shufflenet(), torch.ones(8, 8)),
            ValueError,
            "example_input must be a 4-d",
        ),
        (
            lambda: deploy.quantize_int8(tiny_shufflenet(), "images"),
            TypeError,
            "calibration_data must be a tensor.*got 'images'",
        ),
        (
            lambda: deploy.quantize_int8(tiny_shufflenet(), []),
            ValueError,
            "calibration_data must hold at least one batch",
        ),
        (
            lambda: deploy.quantize_int8(tiny_shufflenet(), [torch.ones(2, 3)]),
            ValueError,
            r"calibration_data\[0\] must be a 4-d",
        ),
        (
            lambda: deploy.quantize_int8(tiny_shufflenet(), torch.ones(4, 3, 8, 8), batch_size=0),
            ValueError,
            "batch_size must be an int >= 1, got 0",
        ),
        (
            lambda: deploy.quantize_int8(tiny_shufflenet(), torch.ones(4, 3, 8, 8), compiled="yes"),
            TypeError,
            "compiled must be True or False, got 'yes'",
        ),
        (
            lambda: deploy.top1_agreement(tiny_shufflenet(), None, torch.ones(1, 3, 8, 8)),
            TypeError,
            "model_b must be callable, got None",
        ),
        (
            lambda: deploy.top1_agreement(abs, abs, torch.ones(1, 3, 8, 8), batch_size=1.5),
            TypeError,
            "batch_size must be an int >= 1, got 1.5",
        ),
        (lambda: tiny_optimize(precisions=("float32", "int8")), ValueError, NEEDS_IMAGES),
        (lambda: tiny_optimize(precisions="int8"), TypeError, NOT_NAMES + ".*got 'int8'"),
        (lambda: tiny_optimize(precisions=["fp16"]), ValueError, r"precisions\[0\] .*got 'fp16'"),
        (lambda: tiny_optimize(calibration_data=torch.ones(1, 3, 8, 8)), ValueError, ONLY_WITH),
        (
            lambda: tiny_optimize(min_agreement=2),
            ValueError,
            "min_agreement must be .* <= 1, got 2",
        ),
        (lambda: tiny_optimize(runtimes="openvino"), TypeError, NOT_NAMES + ".*got 'openvino'"),
        (
            lambda: tiny_optimize(runtimes=["trt"]),
            ValueError,
            r"runtimes\[0\] must be one of 'onnx",
        ),
        (
            lambda: deploy.optimize(tiny_shufflenet(), torch.ones(1, 3, 8, 8), min_run_time=0),
            ValueError,
            "min_run_time must be a finite number > 0, got 0",
        ),
        (
            lambda: deploy.optimize(tiny_shufflenet(), torch.ones(1, 3, 8, 8), rounds=0),
            ValueError,
            "rounds must be an int >= 1, got 0",
        ),
        (lambda: deploy.choose({}), ValueError, "times must have at least one entry, got {}"),
        (
            lambda: deploy.choose([1.0, 2.0]),
            TypeError,
            r"times must be a mapping \(a dict\), got \[1.0, 2.0\]",
        ),
        (
            lambda: deploy.choose({"a": [1.0] * 6}, estimator="mode"),
            ValueError,
            "estimator must be one of .*got 'mode'",
        ),
    ],
)
def test_bad_input(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_relative_error_is_absolute_below_the_floor_and_relative_above():
    want = torch.tensor([0.5, -0.25])
    got = want + torch.tensor([0.01, 0.0])
    assert deploy.relative_error(got, want) == pytest.approx(0.01)  # max |want| < 1: absolute
    assert deploy.relative_error(got, want, floor=0) == pytest.approx(0.02)  # relative to 0.5
    assert deploy.relative_error(got * 10, want * 10) == pytest.approx(0.02)  # above 1: relative
    with pytest.raises(ValueError, match="want is all zeros"):
        deploy.relative_error(torch.ones(2), torch.zeros(2), floor=0)
    with pytest.raises(ValueError, match="floor must be"):
        deploy.relative_error(got, want, floor=-1)
    with pytest.raises(ValueError, match="got must have want's shape"):
        deploy.relative_error(got[:1], want)


@pytest.mark.parametrize("sets, reduced", [(("AVX2",), True), (("AVX2", "AVX-512", "VNNI"), False)])
def test_int8_keeps_its_sums_in_range_on_a_cpu_without_vnni(monkeypatch, sets, reduced):
    pytest.importorskip("torchao", reason="int8 needs torchao (in requirements.txt)")
    from shufflelib.deploy import quantize

    monkeypatch.setattr(quantize, "instruction_sets", lambda: sets)
    assert deploy.reduced_range() is reduced
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    q = deploy.quantize_int8(model, rand(16, 3, 16, 16, seed=1), compiled=False)
    activations = [
        n.args[4] for n in q.reference.graph.nodes if "quantize_per_tensor" in str(n.target)
    ]
    assert activations and set(activations) == {127 if reduced else 255}  # uint8: 7 or 8 bits
