"""shufflelib.ladder: chapter 11's steps timed side by side, and the roofline bound."""

import copy
import statistics

import pytest
import torch
from torch import nn

from shufflelib import ladder
from shufflelib.bench import Roofline
from shufflelib.cost import mac, madds
from shufflelib.deploy import fold_bn, relative_error
from shufflelib.layers import ConvBNAct, randomise_batchnorm
from shufflelib.models import build, reparameterize
from shufflelib.tables import Table

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_net(seed=0):
    """A stem, a 1x1 convolution, pooling and a classifier, with random BatchNorm statistics."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        ConvBNAct(3, 8, 3, 2), ConvBNAct(8, 16, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    return randomise_batchnorm(model, seed).eval()


def roof(peak=1e9, bandwidth=1e8):
    return Roofline(
        peak_madds=peak, bandwidth=bandwidth, device="cpu", matmul_size=64, copy_bytes=1
    )


def test_ladder_rows_columns_and_batches(request):
    torch._dynamo.reset()  # compile afresh, and leave no compiled graphs behind
    request.addfinalizer(torch._dynamo.reset)
    model = tiny_net()
    before = [(n, m.training) for n, m in model.named_modules()], copy.deepcopy(model.state_dict())
    table = ladder.ladder(
        model,
        copy.deepcopy(model),
        name="tiny",
        batches=(4,),
        image_size=32,
        roof=roof(),
        runtimes=(),  # PyTorch's rows only (the runtimes' rows: test_runtimes.py)
        rounds=1,
        max_rounds=1,
        min_run_time=0.02,
        threads=2,  # compiled, checked and timed on 2 threads; the caller's count comes back
    )
    assert table.column("variant") == [
        "torchvision eager",
        "ours eager",
        "+ BN folding",
        "+ channels-last",
        "+ compiled",
    ]
    assert isinstance(table, ladder.LadderTable) and table.batches == (4,)
    assert set(table.column("backend")) == {"PyTorch"}
    assert set(table.column("precision")) == {"float32"}
    assert all(e <= 1e-4 for e in table.column("max error"))
    assert table.column(ladder.column("speed-up", 4))[0] == pytest.approx(1.0)
    low, high = ladder.column("low", 4), ladder.column("high", 4)
    assert table.column(low)[0] == table.column(high)[0] == pytest.approx(1.0)
    assert all(r > 0 for r in table.column(ladder.column("roofline", 4)))
    assert set(table.times) == {4} and len(table.times[4]["+ compiled"]) == 1
    kept = table.compiled[4]["+ compiled"]  # the network that was timed, kept for a profile
    assert set(table.compiled) == {4} and set(table.compiled[4]) == {"+ compiled"}
    x, threads = torch.randn(4, 3, 32, 32), torch.get_num_threads()
    torch.set_num_threads(2)  # the count it was compiled for
    try:
        with torch.inference_mode():
            assert relative_error(kept(x), model(x)) <= 1e-4
    finally:
        torch.set_num_threads(threads)
    assert table.column("compile")[-1] > 0
    assert table.units == {"compile": "s", "b4": "ms", "b4 IQR": "ms"}
    assert table.header(ladder.column("median", 4)) == "b4 (ms)"
    assert table.column("b4")[1] == pytest.approx(
        statistics.median(table.times[4]["ours eager"]) * 1e3
    )
    view = table.pick(["variant", ladder.column("IQR", 4), "compile"])  # a view keeps the units
    assert view.units == {"b4 IQR": "ms", "compile": "s"}
    assert "2 threads" in table.note and torch.get_num_threads() == 1
    after = [(n, m.training) for n, m in model.named_modules()], model.state_dict()
    assert before[0] == after[0] and all(torch.equal(before[1][k], after[1][k]) for k in after[1])


def test_columns_are_named_in_one_place():
    assert [ladder.column(w, 16) for w in ladder.COLUMNS] == [
        "b16",
        "b16 IQR",
        "speed-up b16",
        "b16 low",
        "b16 high",
        "roofline b16",
    ]


def test_step_gains_compare_each_step_with_the_one_before():
    variants = ["torchvision eager", "ours eager", "+ compiled", "+ int8"]
    g = torch.Generator().manual_seed(0)
    drift = torch.exp(0.2 * torch.randn(10, generator=g))
    scale = {"torchvision eager": 1.0, "ours eager": 0.99, "+ compiled": 0.5, "+ int8": 0.25}
    times = {
        1: {
            v: (scale[v] * drift * torch.exp(0.05 * torch.randn(10, generator=g))).tolist()
            for v in variants
        }
    }
    rows = ({"model": "net", "variant": v} for v in variants)
    table = ladder.LadderTable(rows, batches=(1,), times=times)
    gains = {r["step"]: r for r in ladder.step_gains(table)}
    assert gains["ours eager"]["faster"] == "too close to call"  # 1% in 5% noise
    assert gains["+ compiled"]["faster"] == "holds"
    assert gains["+ compiled"]["over"] == "ours eager"
    assert gains["+ int8"]["over"] == "+ compiled" and 1.6 < gains["+ int8"]["speed-up"] < 2.5
    with pytest.raises(TypeError, match="table must be a shufflelib.ladder.LadderTable"):
        ladder.step_gains(Table([{"variant": "a"}]))
    with pytest.raises(ValueError, match="per-round times"):
        ladder.step_gains(ladder.LadderTable([{"variant": "a"}], batches=(1,)))


def paired_times(scale, rounds=10, seed=0):
    """Per-round times of variants whose speeds stand in the ratios of ``scale``, with a shared
    drift and 5% noise of their own."""
    g = torch.Generator().manual_seed(seed)
    drift = torch.exp(0.2 * torch.randn(rounds, generator=g))
    return {
        v: (s * drift * torch.exp(0.05 * torch.randn(rounds, generator=g))).tolist()
        for v, s in scale.items()
    }


def test_runtime_rows_are_compared_with_the_pytorch_path_they_would_replace():
    scale = {
        "torchvision eager": 1.0,
        "+ compiled": 0.5,
        "+ int8": 0.3,
        "ONNX Runtime float32": 0.45,
        "OpenVINO float32": 0.25,
        "OpenVINO int8": 0.2,
    }
    backend = {"ONNX Runtime float32": "ONNX Runtime", "OpenVINO float32": "OpenVINO"}
    backend["OpenVINO int8"] = "OpenVINO"
    precision = {"+ int8": "int8", "OpenVINO int8": "int8"}
    rows = [
        {
            "model": "net",
            "variant": v,
            "backend": backend.get(v, "PyTorch"),
            "precision": precision.get(v, "float32"),
        }
        for v in scale
    ]
    table = ladder.LadderTable(rows, batches=(1,), times={1: paired_times(scale)})
    over = {r["step"]: r["over"] for r in ladder.step_gains(table)}
    assert over == {
        "+ compiled": "torchvision eager",
        "+ int8": "+ compiled",
        "ONNX Runtime float32": "+ compiled",
        "OpenVINO float32": "+ compiled",
        "OpenVINO int8": "+ int8",
    }


def fastest_table(scale, backend):
    rows = []
    for v, s in scale.items():
        row = {"model": "net", "variant": v, "backend": backend.get(v, "PyTorch")}
        row["precision"] = "int8" if "int8" in v else "float32"
        row[ladder.column("speed-up", 1)] = 1 / s
        row[ladder.column("low", 1)], row[ladder.column("high", 1)] = 0.95 / s, 1.05 / s
        rows.append(row)
    return ladder.LadderTable(rows, batches=(1,), times={1: paired_times(scale, 12)})


def test_a_re_parameterisable_network_climbs_from_a_named_reference(request):
    torch._dynamo.reset()
    request.addfinalizer(torch._dynamo.reset)
    torch.manual_seed(0)
    model = randomise_batchnorm(build("repvgg_a0", num_classes=10, small_input=True), 0).eval()
    table = ladder.ladder(
        model, copy.deepcopy(model), name="RepVGG-A0", reference_name="timm eager", batches=(1,),
        image_size=32, runtimes=(), rounds=1, max_rounds=1, min_run_time=0.02,
    )  # fmt: skip
    assert table.column("variant") == [
        "timm eager",
        "ours eager",
        "+ re-parameterised",
        "+ channels-last",
        "+ compiled",
    ]
    assert all(e <= 1e-4 for e in table.column("max error"))
    assert table.column(ladder.column("speed-up", 1))[0] == pytest.approx(1.0)
    assert "the speed of timm eager" in ladder.fastest(table, 1)
    gains = ladder.step_gains(table)
    assert gains.column("over")[:2] == ["timm eager", "ours eager"]


def test_fastest_names_the_winner_its_interval_and_whether_it_beats_the_next():
    scale = {"torchvision eager": 1.0, "+ compiled": 0.5, "OpenVINO float32": 0.3}
    table = fastest_table(scale, {"OpenVINO float32": "OpenVINO"})
    line = ladder.fastest(table, 1)
    assert line.startswith("batch 1: the fastest float32 path here is OpenVINO float32, 3.33x")
    assert "against the next, + compiled (2.00x [1.90, 2.10])" in line
    assert line.endswith(
        "faster beyond noise? holds; PyTorch's fastest is + compiled, 2.00x [1.90, 2.10]."
    )
    close = fastest_table({"torchvision eager": 1.0, "a": 0.5, "b": 0.49}, {})
    assert "faster beyond noise? too close to call." in ladder.fastest(close, 1)
    assert "PyTorch's fastest" not in ladder.fastest(close, 1)  # PyTorch won
    openvino = {"OpenVINO float32": "OpenVINO", "OpenVINO int8": "OpenVINO"}
    int8 = fastest_table({**scale, "OpenVINO int8": 0.2}, openvino)
    assert "OpenVINO float32" in ladder.fastest(int8, 1)
    assert "OpenVINO int8, 5.00x" in ladder.fastest(int8, 1, precision=None)
    assert ladder.fastest(int8, 1, precision="int8").startswith(
        "batch 1: the fastest int8 path here is OpenVINO int8"
    )
    assert ladder.best_variant(int8, 1) == "OpenVINO float32"
    assert ladder.best_variant(int8, 1, precision=None) == "OpenVINO int8"
    assert ladder.best_variant(int8, 1, backend="PyTorch") == "+ compiled"
    assert ladder.best_variant(int8, 1, precision="int8", backend="runtimes") == "OpenVINO int8"
    with pytest.raises(ValueError, match="no row of precision 'int8' and backend 'PyTorch'"):
        ladder.best_variant(int8, 1, precision="int8", backend="PyTorch")
    with pytest.raises(ValueError, match="table has no row of precision 'bfloat16'"):
        ladder.fastest(table, 1, precision="bfloat16")
    with pytest.raises(ValueError, match="batch must be one of 1; got 16"):
        ladder.fastest(table, 16)


def test_roofline_bound_is_the_slower_of_compute_and_memory():
    model = tiny_net()
    size = (2, 3, 32, 32)
    work, moved = madds(model, size), mac(fold_bn(model), size).bytes
    bound = ladder.roofline_bound(model, size, roof(peak=1e9, bandwidth=1e15))
    assert (bound.madds, bound.mac_bytes) == (work, moved)
    assert bound.seconds == pytest.approx(work / 1e9) and bound.bound_by == "compute"
    bound = ladder.roofline_bound(model, size, roof(peak=1e15, bandwidth=1e6))
    assert bound.seconds == pytest.approx(moved / 1e6) and bound.bound_by == "memory"


def test_the_bound_of_a_re_parameterisable_network_counts_it_as_deployed():
    model = randomise_batchnorm(build("mobileone_s0", num_classes=10, small_input=True), 0).eval()
    size, r = (1, 3, 32, 32), roof()
    deployed = reparameterize(model)
    bound = ladder.roofline_bound(model, size, r)
    assert (bound.madds, bound.mac_bytes) == (madds(deployed, size), mac(deployed, size).bytes)
    assert bound.madds < madds(model, size) / 3  # not the training-time branches' work


def test_roofline_table_has_a_row_per_network_and_batch():
    model = tiny_net()
    table = ladder.roofline_table({"a": model, "b": model}, roof(), batches=(1, 4), image_size=32)
    assert [(r["network"], r["batch"]) for r in table] == [("a", 1), ("a", 4), ("b", 1), ("b", 4)]
    bound = ladder.roofline_bound(model, (4, 3, 32, 32), roof())
    row = table[1]
    assert row["MAdds"] == bound.madds / 1e6 and row["bound"] == bound.seconds * 1e3
    assert row["MAC"] == bound.mac_bytes / 1e6 and row["compute"] == bound.compute_seconds * 1e3
    assert table.units == {
        "MAdds": "M",
        "MAC": "MB",
        "compute": "ms",
        "memory": "ms",
        "bound": "ms",
    }
    assert row["bound by"] == bound.bound_by and "bandwidth" in table.note


def test_roofline_points_take_the_batch_sizes_from_the_table_not_its_column_names():
    model = tiny_net()
    rows = [
        {"model": "tiny", "variant": "ours eager", "b2": 2.0, "b7 IQR": 0.1},
        {"model": "tiny", "variant": "+ compiled", "b2": 1.0, "b7 IQR": 0.1},
    ]  # a stray "b7 ..." column: no batch 7 was timed, and no point is made for it
    table = ladder.LadderTable(rows, batches=(2,))
    points = ladder.roofline_points([table], {"tiny": model}, image_size=32)
    work = madds(model, (2, 3, 32, 32))
    assert points.column("GMAdd/s") == pytest.approx([work / 2e-3 / 1e9, work / 1e-3 / 1e9])
    assert points.column("kind") == ["tiny, batch 2"] * 2
    only = ladder.roofline_points([table], {"tiny": model}, image_size=32, variants=["+ compiled"])
    assert only.column("operator") == ["+ compiled (b2)"]
    with pytest.raises(ValueError, match="no network for 'tiny'"):
        ladder.roofline_points([table], {"other": model}, image_size=32)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (
            lambda: ladder.ladder(tiny_net(), tiny_net(), batches=(0,)),
            ValueError,
            r"batches must be a sequence of ints >= 1, got \(0,\)",
        ),
        (
            lambda: ladder.ladder(tiny_net(), tiny_net(), batches=()),
            ValueError,
            r"batches must be a sequence of ints >= 1, got \(\)",
        ),
        (
            lambda: ladder.ladder(tiny_net(), tiny_net(), roof="fast"),
            TypeError,
            "roof must be a shufflelib.bench.Roofline, got 'fast'",
        ),
        (
            lambda: ladder.ladder(tiny_net(), tiny_net().train()),
            ValueError,
            "reference must be a torch.nn.Module in eval mode.*call reference.eval()",
        ),
        (
            lambda: ladder.ladder(tiny_net(), tiny_net(), image_size=4),
            ValueError,
            "image_size must be an int >= 8, got 4",
        ),
        (
            lambda: ladder.ladder(tiny_net(), tiny_net(), threads=0),
            ValueError,
            "threads must be an int >= 1, got 0",
        ),
        (
            lambda: ladder.ladder(tiny_net(), tiny_net(), name=3),
            TypeError,
            "name must be a str, got 3",
        ),
        (
            lambda: ladder.ladder(tiny_net(), tiny_net(), reference_name="+ compiled"),
            ValueError,
            "reference_name must not name a step .*got '\\+ compiled'",
        ),
        (
            lambda: ladder.ladder(tiny_net(), tiny_net(), reference_name=""),
            ValueError,
            "reference_name must be a non-empty str",
        ),
        (
            lambda: ladder.ladder(tiny_net(), tiny_net(), eval_data=torch.ones(1, 3, 8, 8)),
            ValueError,
            "pass calibration_data too",
        ),
        (
            lambda: ladder.ladder(tiny_net(), tiny_net(), rounds=0),
            ValueError,
            "rounds must be an int >= 1, got 0",
        ),
        (
            lambda: ladder.roofline_table({}, roof()),
            ValueError,
            "models must have at least one entry, got {}",
        ),
        (
            lambda: ladder.roofline_table({"a": "net"}, roof()),
            TypeError,
            r"models\['a'\] must be a torch.nn.Module in eval mode, got 'net'",
        ),
        (
            lambda: ladder.roofline_table({"a": tiny_net()}, roof(), batches=(0,)),
            ValueError,
            "batches must be",
        ),
        (
            lambda: ladder.roofline_bound(tiny_net(), (3, 32, 32), roof()),
            ValueError,
            r"input_size must be a sequence of ints >= 1 of length 4, got \(3, 32, 32\)",
        ),
        (
            lambda: ladder.roofline_points([Table()], {"a": tiny_net()}),
            TypeError,
            r"tables\[0\] must be a shufflelib.ladder.LadderTable",
        ),
        (
            lambda: ladder.roofline_points([], {"a": tiny_net()}, variants="+ compiled"),
            TypeError,
            "variants must be a sequence of variant names, got '\\+ compiled'",
        ),
        (lambda: ladder.column("mean", 1), ValueError, "what must be one of .*got 'mean'"),
        (
            lambda: ladder.ladder(tiny_net(), tiny_net(), runtimes=["tensorrt"]),
            ValueError,
            r"runtimes\[0\] must be one of 'onnxruntime', 'openvino'; got 'tensorrt'",
        ),
        (
            lambda: ladder.fastest(Table(), 1),
            TypeError,
            "table must be a shufflelib.ladder.LadderTable, got",
        ),
        (
            lambda: ladder.fastest(
                ladder.LadderTable(batches=(1,), times={1: {}}), 1, precision="fp8"
            ),
            ValueError,
            "precision must be one of 'float32', 'bfloat16', 'int8'; got 'fp8'",
        ),
        (lambda: ladder.column("median", 0), ValueError, "batch must be an int >= 1, got 0"),
    ],
)
def test_bad_input(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
