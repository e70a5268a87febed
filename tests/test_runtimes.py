"""shufflelib.deploy's ONNX export and runtimes (ONNX Runtime, OpenVINO): outputs, int8 agreement,
calls that are the runtime's call, profiles, the ladder's and optimize's runtime rows; chapter 11.

Offline, on tiny networks. The runtimes are chapter 11's dependencies (requirements.txt): the
tests that run one skip where it is not installed; the bad-input and missing-runtime tests run
everywhere.
"""

import copy
import sys

import numpy as np
import pytest
import torch
from test_deploy import Counter, assert_same, rand, rel_error, snapshot, tiny_shufflenet

from shufflelib import deploy, ladder, profiler, validate
from shufflelib.deploy import optimized

pytestmark = pytest.mark.usefixtures("one_thread")

RUNTIMES = ("onnxruntime", "openvino")


def needs(*packages):
    for package in packages:
        pytest.importorskip(package, reason=f"chapter 11's {package} (requirements.txt)")


@pytest.fixture(scope="module")
def model():
    return deploy.fold_bn(tiny_shufflenet(seed=7))


@pytest.fixture(scope="module")
def exported(model):
    """The tiny network exported once (dynamic batch) and quantised on 64 random images."""
    needs("onnx", "onnxscript", "onnxruntime")
    return deploy.onnx_models(model, rand(1, 3, 32, 32), rand(64, 3, 32, 32, seed=8))


# ---------------------------------------------------------------------------------------------
# export and float32


def test_export_onnx_writes_a_checked_model_with_a_dynamic_batch(model, exported, tmp_path):
    import onnx

    f32 = exported["float32"]
    assert (f32.precision, f32.batch) == ("float32", None) and f32.opset >= 17
    assert f32.seconds > 0 and f32.megabytes > 0
    proto = onnx.load(f32.save(tmp_path / "tiny.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    (graph_input,) = proto.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert graph_input.name == "images" and dims[0].dim_param and dims[1].dim_value == 3
    assert [o.name for o in proto.graph.output] == ["logits"]
    fixed = deploy.export_onnx(model, rand(3, 3, 32, 32), dynamic_batch=False)
    assert fixed.batch == 3


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_float32_runtimes_give_the_models_outputs_at_any_batch(runtime, model, exported):
    needs(runtime)
    runner = deploy.runtime_model(exported["float32"], runtime, threads=1)
    assert (runner.precision, runner.threads, runner.runtime) == ("float32", 1, runtime)
    assert runner.name == f"{deploy.RUNTIMES[runtime]} float32" and runner.load_seconds > 0
    with torch.inference_mode():
        for x in (rand(1, 3, 32, 32, seed=1), rand(5, 3, 32, 32, seed=2)):
            got, want = runner(x), model(x)
            assert isinstance(got, torch.Tensor) and got.shape == want.shape
            assert rel_error(got, want) <= 1e-5
            channels_last = x.contiguous(memory_format=torch.channels_last)
            assert rel_error(runner(channels_last), want) <= 1e-5


def test_openvino_states_its_precision_and_fixes_the_shape_when_asked(model, exported):
    needs("openvino")
    import openvino as ov
    import openvino.properties.hint as hints

    x = rand(2, 3, 32, 32)
    runner = deploy.runtime_model(exported["float32"], "openvino", input_size=x.shape)
    assert runner.compiled.get_property(hints.inference_precision) == ov.Type.f32
    assert runner.input_size == (2, 3, 32, 32) and runner.threads == torch.get_num_threads()
    with torch.inference_mode():
        assert rel_error(runner(x), model(x)) <= 1e-5
    if deploy.bfloat16_supported():
        bf16 = deploy.runtime_model(exported["float32"], "openvino", bfloat16=True)
        assert bf16.precision == "bfloat16" and bf16.name == "OpenVINO bfloat16"
        assert bf16.compiled.get_property(hints.inference_precision) == ov.Type.bf16
        with torch.inference_mode():
            assert 0 < rel_error(bf16(x), model(x)) < 0.05  # rounds, but stays close
    else:
        with pytest.raises(RuntimeError, match="cannot compute in bfloat16 on this CPU"):
            deploy.runtime_model(exported["float32"], "openvino", bfloat16=True)


# ---------------------------------------------------------------------------------------------
# int8 outside torch


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_int8_qdq_agrees_with_the_float_model_in_both_runtimes(runtime, model, exported):
    needs(runtime)
    import onnx

    q = exported["int8"]
    assert q.precision == "int8" and q.megabytes < exported["float32"].megabytes
    ops = {n.op_type for n in onnx.load_from_string(q.data).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ
    runner = deploy.runtime_model(q, runtime)
    held_out = rand(128, 3, 32, 32, seed=9)
    assert deploy.top1_agreement(model, runner, held_out, batch_size=32) >= 0.9
    with torch.inference_mode():
        assert 1e-5 < rel_error(runner(held_out), model(held_out)) < 0.1  # really rounds


@pytest.mark.parametrize("reduced", [True, False])
def test_int8_qdq_weights_take_7_bits_on_a_cpu_without_vnni(reduced, exported, monkeypatch):
    needs("onnx", "onnxruntime")
    import onnx
    from onnx import numpy_helper

    from shufflelib.deploy import onnx_export

    monkeypatch.setattr(onnx_export, "reduced_range", lambda: reduced)
    q = deploy.quantize_onnx(exported["float32"], rand(16, 3, 32, 32, seed=8))
    weights = [
        numpy_helper.to_array(t)
        for t in onnx.load_from_string(q.data).graph.initializer
        if t.data_type == onnx.TensorProto.INT8
    ]
    assert weights
    largest = max(int(abs(w.astype("int32")).max()) for w in weights)
    assert largest <= 64 if reduced else largest > 64  # 7 bits: [-64, 63]; 8 bits: to 127


def test_runtime_agreement_has_a_row_per_path(model):
    needs("onnx", "onnxscript", "onnxruntime", "openvino")
    fn = copy.deepcopy(model)
    table = deploy.runtime_agreement(
        model, rand(32, 3, 32, 32, seed=8), rand(40, 3, 32, 32, seed=9), others={"copy": fn}
    )
    paths = table.column("path")
    want = ["ONNX Runtime float32", "OpenVINO float32", "ONNX Runtime int8", "OpenVINO int8"]
    assert [p for p in paths if "bfloat16" not in p] == [*want, "copy"]
    rows = {r["path"]: r for r in table}
    assert rows["copy"]["top-1 agreement"] == 1.0 and rows["copy"]["max error"] == 0.0
    assert all(rows[p]["max error"] <= 1e-5 for p in want[:2])
    assert all(r["images"] == 40 for r in table)
    assert all(0.8 <= r["top-1 agreement"] <= 1.0 for r in table)


# ---------------------------------------------------------------------------------------------
# a call is the runtime's call and nothing more


class Recorder:
    """Stands in for a session or an infer request, records each call, and passes it on."""

    def __init__(self, real, method):
        self.real, self.method, self.calls = real, method, []

    def __getattr__(self, name):
        if name != self.method:
            return getattr(self.real, name)

        def call(*args, **kwargs):
            self.calls.append((args, kwargs))
            return getattr(self.real, name)(*args, **kwargs)

        return call


@pytest.mark.parametrize(
    "runtime, attribute, method",
    [
        ("onnxruntime", "session", "run"),
        ("openvino", "request", "infer"),
    ],
)
def test_a_runners_call_is_one_runtime_call_on_the_inputs_memory(
    runtime, attribute, method, exported, monkeypatch
):
    needs(runtime)
    runner = deploy.runtime_model(exported["float32"], runtime)
    recorder = Recorder(getattr(runner, attribute), method)
    setattr(runner, attribute, recorder)
    entered = Counter(monkeypatch, torch, "inference_mode")
    x = rand(2, 3, 32, 32)
    runner(x)
    assert len(recorder.calls) == 1 and entered.calls == 0
    args, kwargs = recorder.calls[0]
    given = args[1]["images"] if runtime == "onnxruntime" else args[0]
    assert np.shares_memory(given, x.numpy())  # no copy of the input
    if runtime == "openvino":
        assert kwargs == {"share_inputs": True}


# ---------------------------------------------------------------------------------------------
# profiles from the runtimes' own profilers


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_profile_runtime_reads_the_runtimes_own_profiler(runtime, exported):
    needs(runtime)
    runner = deploy.runtime_model(exported["float32"], runtime)
    table = deploy.profile_runtime(runner, rand(2, 3, 32, 32), runs=2, top=3)
    operators = table.column("operator")
    assert len(operators) >= 4 and operators[3].endswith("others)")
    assert sum(table.column("share")) == pytest.approx(1.0)
    assert "convolution" in table.kinds and "by the runtime's profiler" in table.title
    assert runner.name in table.note
    profiles = {"a": table, "b": table}
    kinds = profiler.kind_table(profiles)
    assert kinds[-1]["kind"] == "total" and "convolution kernels" in kinds.column("kind")
    assert kinds[-1]["a"] == pytest.approx(sum(table.kinds.values()) * 1e3)
    assert table.unit("self time") == "ms" and kinds.header("a") == "a (ms)"


def test_kinds_compare_across_profilers_in_coarse_groups():
    """Inductor's generated kernels and OpenVINO's reorders are both data movement."""
    fast, slow = profiler.operator_table({}, 1), profiler.operator_table({}, 1)
    copies = profiler.operator_kind("Reorder (jit_uni_f32)")
    fast.kinds = {"convolution": 0.002, copies: 0.0008, profiler.OTHER: 0.0005}
    slow.kinds = {"convolution": 0.004, profiler.operator_kind("CompiledFxGraph"): 0.0005}
    slow.kinds["pooling"] = 0.001
    assert (
        len({profiler.GROUPS[k] for k in (copies, profiler.operator_kind("CompiledFxGraph"))}) == 1
    )
    table = profiler.kind_table({"fast": fast, "slow": slow})
    assert table.column("kind")[0] == "convolution kernels" and table[-1]["kind"] == "total"
    assert table[-1]["fast"] == pytest.approx(3.3) and table[-1]["slow"] == pytest.approx(5.5)
    assert table.units == {"fast": "ms", "slow": "ms"} and table.header("slow") == "slow (ms)"
    line = profiler.where_saved({"fast": fast, "slow": slow}, "fast", "slow", top=2)
    assert line == (
        "Under the profilers, fast takes 3.30 ms per forward pass and slow 5.50 ms. fast spends "
        "less than slow on: convolution kernels, 2.00 ms less; pooling, 1.00 ms less. It spends "
        "more on framework (around the kernels): 0.50 ms."
    )
    with pytest.raises(ValueError, match="slower must be another profile than faster"):
        profiler.where_saved({"fast": fast}, "fast", "fast")


# ---------------------------------------------------------------------------------------------
# the ladder and optimize with the runtimes


def test_ladder_times_the_runtime_rows_beside_pytorchs(request):
    needs("onnx", "onnxscript", "onnxruntime", "openvino", "torchao")
    torch._dynamo.reset()
    request.addfinalizer(torch._dynamo.reset)
    net = tiny_shufflenet(seed=3)
    images = {"calibration_data": rand(16, 3, 32, 32, seed=4), "eval_data": rand(32, 3, 32, 32)}
    sampling = {"rounds": 1, "max_rounds": 1, "min_run_time": 0.01}
    table = ladder.ladder(
        net, copy.deepcopy(net), name="tiny", batches=(2,), image_size=32, **images, **sampling
    )
    rows = {r["variant"]: r for r in table}
    for name in ("ONNX Runtime float32", "OpenVINO float32", "ONNX Runtime int8", "OpenVINO int8"):
        assert name in rows and rows[name]["compile"] > 0
        assert len(table.times[2][name]) == 1
    assert rows["OpenVINO float32"]["backend"] == "OpenVINO"
    assert all(rows[k]["max error"] <= 1e-4 for k in rows if rows[k]["precision"] == "float32")
    reduced = [k for k in rows if rows[k]["precision"] != "float32"]
    assert all(0 < rows[k]["top-1 agreement"] <= 1 for k in reduced)
    gains = {r["step"]: r["over"] for r in ladder.step_gains(table)}
    assert gains["OpenVINO float32"] == "+ compiled" and gains["OpenVINO int8"] == "+ int8"
    assert ladder.fastest(table, 2).startswith("batch 2: the fastest float32 path here is ")
    assert set(table.exported) == {"float32", "int8"}  # to load again, for a profile


def test_optimize_considers_the_runtimes_and_returns_the_winner_as_one_callable(model, monkeypatch):
    needs("onnx", "onnxscript", "onnxruntime", "openvino")
    x = rand(4, 3, 32, 32)
    best = deploy.optimize(model, x, rounds=1, max_rounds=1, min_run_time=0.01)
    names = best.timings.column("name")
    assert names[:5] == [
        "eager, NCHW",
        "eager, channels-last",
        "compiled",
        "ONNX Runtime float32",
        "OpenVINO float32",
    ]
    assert all(e <= deploy.TOLERANCE for e in best.timings.column("max error"))
    # whichever wins is called the same way, and is the runtime's runner itself
    monkeypatch.setattr(optimized, "choose", lambda times, estimator: ("OpenVINO float32", "won"))
    won = deploy.optimize(
        model, x, runtimes=["openvino"], rounds=1, max_rounds=1, min_run_time=0.01
    )
    assert (won.backend, won.precision, won.steps) == (
        "OpenVINO",
        "float32",
        ["ONNX export", "OpenVINO float32"],
    )
    assert isinstance(won.fn, deploy.OpenVINOModel) and won.reason == "won"
    with torch.inference_mode():
        assert rel_error(won(x), model(x)) <= 1e-5


def test_optimize_keeps_a_reduced_precision_only_above_the_agreement_floor(model):
    needs("onnx", "onnxscript", "onnxruntime", "openvino")
    best = deploy.optimize(
        model,
        rand(4, 3, 32, 32),
        rand(32, 3, 32, 32, seed=8),
        precisions=("float32", "bfloat16", "int8"),
        min_agreement=1.0,
        eval_data=rand(64, 3, 32, 32, seed=9),
        rounds=1,
        max_rounds=1,
        min_run_time=0.01,
    )
    timed = {r["name"]: r for r in best.timings}
    for name in ("ONNX Runtime int8", "OpenVINO int8", "compiled int8", "OpenVINO bfloat16"):
        if name in timed:  # kept: it agreed on every image
            assert timed[name]["agreement"] == 1.0
        else:
            assert (
                f"{name} left out" in best.reason
                or "torchao" in best.reason
                or ("bfloat16" in name and not deploy.bfloat16_supported())
            )


# ---------------------------------------------------------------------------------------------
# a runtime that is not installed


@pytest.mark.parametrize("package", ["onnxruntime", "openvino"])
def test_a_missing_runtime_says_how_to_install_it(package, monkeypatch):
    onnx_model = deploy.OnnxModel(b"", "float32", None, 0.0, 20)
    monkeypatch.setitem(sys.modules, package, None)  # import fails as if not installed
    assert package not in deploy.available_runtimes()
    assert not deploy.installed(package)
    with pytest.raises(ImportError, match=f"not installed here: pip install {package}"):
        deploy.runtime_model(onnx_model, package)
    with pytest.raises(ImportError, match=f"pip install {package}"):
        deploy.chosen_runtimes([package])
    with pytest.raises(ImportError, match=f"pip install {package}"):  # before any work
        deploy.optimize(tiny_shufflenet(), rand(1, 3, 8, 8), runtimes=[package])


def test_without_the_exporter_there_is_no_runtime_and_export_says_why(monkeypatch):
    needs("onnx")
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    assert deploy.available_runtimes() == []
    with pytest.raises(ImportError, match="export_onnx .*needs the package 'onnxscript'.*pip"):
        deploy.export_onnx(tiny_shufflenet(), rand(1, 3, 8, 8))
    # optimize then times PyTorch alone, as where the runtimes are not installed
    assert deploy.chosen_runtimes(None) == ()


def test_export_and_runners_leave_the_callers_model_alone(model):
    needs("onnx", "onnxscript")
    net = tiny_shufflenet(seed=2)
    before = snapshot(net)
    deploy.export_onnx(net, rand(1, 3, 32, 32))
    assert_same(before, snapshot(net))


# ---------------------------------------------------------------------------------------------
# bad input: TypeError for the wrong kind, ValueError for a value not allowed; before any work

F32 = deploy.OnnxModel(b"", "float32", None, 0.0, 20)
INT8 = deploy.OnnxModel(b"", "int8", None, 0.0, 20)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (
            lambda: deploy.runtime_model("model.onnx", "onnxruntime"),
            TypeError,
            "onnx_model must be a shufflelib.deploy.onnx_export.OnnxModel, got 'model.onnx'",
        ),
        (
            lambda: deploy.runtime_model(F32, "tensorrt"),
            ValueError,
            "runtime must be one of 'onnxruntime', 'openvino'; got 'tensorrt'",
        ),
        (
            lambda: deploy.runtime_model(F32, "onnxruntime", bfloat16=True),
            ValueError,
            "bfloat16=True needs runtime 'openvino' and a float32 model, got runtime 'onnxruntime'",
        ),
        (
            lambda: deploy.runtime_model(INT8, "openvino", bfloat16=True),
            ValueError,
            "and a model of precision 'int8'",
        ),
        (
            lambda: deploy.runtime_model(F32, "openvino", bfloat16="yes"),
            TypeError,
            "bfloat16 must be True or False, got 'yes'",
        ),
        (
            lambda: deploy.runtime_model(F32, "openvino", threads=0),
            ValueError,
            "threads must be an int >= 1, got 0",
        ),
        (
            lambda: deploy.runtime_model(F32, "openvino", input_size=(1, 3, 32)),
            ValueError,
            r"input_size must be a sequence of ints >= 1 of length 4, got \(1, 3, 32\)",
        ),
        (
            lambda: deploy.export_onnx(tiny_shufflenet().train(), rand(1, 3, 8, 8)),
            ValueError,
            "model must be a torch.nn.Module in eval mode",
        ),
        (
            lambda: deploy.export_onnx(tiny_shufflenet(), torch.ones(3, 8)),
            ValueError,
            r"example_input must be a 4-d torch.Tensor, got shape \(3, 8\)",
        ),
        (
            lambda: deploy.export_onnx(tiny_shufflenet(), rand(1, 3, 8, 8), dynamic_batch=1),
            TypeError,
            "dynamic_batch must be True or False, got 1",
        ),
        (
            lambda: deploy.quantize_onnx(INT8, rand(1, 3, 8, 8)),
            ValueError,
            "onnx_model must be a float32 OnnxModel .*got one of precision 'int8'",
        ),
        (
            lambda: deploy.quantize_onnx(F32, "images"),
            TypeError,
            "calibration_data must be a tensor.*got 'images'",
        ),
        (
            lambda: deploy.quantize_onnx(F32, rand(4, 3, 8, 8), batch_size=0),
            ValueError,
            "batch_size must be an int >= 1, got 0",
        ),
        (
            lambda: deploy.runtime_models({"float32": F32}, precisions="int8"),
            TypeError,
            "precisions must be a non-empty sequence of distinct names .*got 'int8'",
        ),
        (
            lambda: deploy.runtime_models({"float32": F32}, precisions=("int8", "int8")),
            ValueError,
            r"precisions must be a non-empty sequence of distinct names .*got \('int8', 'int8'\)",
        ),
        (
            lambda: deploy.runtime_models({"float32": F32}, runtimes=(), precisions=("int8",)),
            ValueError,
            "precisions asks for int8: exported must hold an 'int8' model",
        ),
        (
            lambda: deploy.runtime_models({"fp16": F32}),
            ValueError,
            "exported's keys must be one of 'float32', 'int8'; got 'fp16'",
        ),
        (
            lambda: deploy.runtime_models({"float32": "f.onnx"}),
            TypeError,
            r"exported\['float32'\] must be a shufflelib.deploy.onnx_export.OnnxModel",
        ),
        (
            lambda: deploy.profile_runtime(tiny_shufflenet(), rand(1, 3, 8, 8)),
            TypeError,
            "runner must be a shufflelib.deploy.runtimes.RuntimeModel, got a Sequential module",
        ),
        (
            lambda: deploy.runtime_agreement(tiny_shufflenet(), rand(4, 3, 8, 8), [], batch_size=8),
            ValueError,
            "eval_data must hold at least one batch, got none",
        ),
        (
            lambda: deploy.runtime_agreement(
                tiny_shufflenet(), rand(4, 3, 8, 8), rand(4, 3, 8, 8), others={"a": 3}
            ),
            TypeError,
            r"others\['a'\] must be callable, got 3",
        ),
        (
            lambda: deploy.require("tensorrt", "a test"),
            ValueError,
            "package must be one of 'onnx', 'onnxscript', 'onnxruntime', 'openvino'; got",
        ),
        (
            lambda: deploy.chosen_runtimes("openvino"),
            TypeError,
            "runtimes must be a non-empty sequence of distinct names .*got 'openvino'",
        ),
        (
            lambda: profiler.kind_table({"a": profiler.KINDS}),
            TypeError,
            r"profiles\['a'\] must be a shufflelib.tables.Table, got",
        ),
        (
            lambda: profiler.operator_table({}, 0),
            ValueError,
            "runs must be an int >= 1, got 0",
        ),
        (
            lambda: profiler.operator_table({}, 1, wall=-1.0),
            ValueError,
            "wall must be a finite number >= 0, got -1.0",
        ),
        (
            lambda: validate.choices("names", ["a", 3], ("a", "b")),
            ValueError,
            r"names\[1\] must be one of 'a', 'b'; got 3",
        ),
        (
            lambda: validate.choices("names", [], ("a", "b")),
            ValueError,
            r"names must be a non-empty sequence of distinct names from 'a', 'b', got \[\]",
        ),
    ],
)
def test_bad_input(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
