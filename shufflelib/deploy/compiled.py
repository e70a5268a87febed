"""``torch.compile`` for inference, and the ``torch.export`` round trip; chapter 11.

A :class:`Compiled` model is compiled and warmed up once per kind of input (shape, thread count);
its calls then do nothing but run the compiled code. Everything compiling needs (Inductor's
freezing setting, hushing two messages of no concern) is held only while :meth:`Compiled.warm_up`
compiles, so no call pays for it, and a call that would compile again outside it fails with an
explanation instead of silently running a graph compiled without freezing.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from .. import validate

__all__ = ["Compiled", "compile", "export_roundtrip"]

Model = Callable[[torch.Tensor], torch.Tensor]


@contextlib.contextmanager
def _quiet_compiler() -> Iterator[None]:
    """Hush two messages of compiling that do not concern the reader, for the block only.

    Inductor logs a CUDA_HOME warning on machines with a CUDA toolkit and no GPU (it compiles C++
    for the CPU here), and its int8 lowering warns about its own use of ``torch.tensor``.
    """
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="To copy construct from a tensor")
            yield
    finally:
        logger.setLevel(level)


class _Gate:
    """``torch.compile``'s backend for one :class:`Compiled`: Inductor, open only in warm-up.

    Dynamo decides whether the weights become constants (Inductor's ``freezing``) from Inductor's
    global configuration when it traces, which :meth:`Compiled.warm_up` sets for the block. A
    graph compiled at any other time, by a call on an input of another shape or thread count,
    would quietly run unfrozen (and compile inside whatever is being timed), so it is refused.
    """

    def __init__(self) -> None:
        self.open = False

    def __call__(self, graph: torch.fx.GraphModule, example_inputs: list[Any]) -> Any:
        if not self.open:
            raise RuntimeError(
                "this compiled model was called on an input it was not compiled for (another "
                "shape, thread count or grad mode than its warm-up); compiling it here would "
                "run without the compile options. Call warm_up(x) on it with such an input "
                "first, or deploy.compile(model, x)"
            )
        from torch._inductor.compile_fx import compile_fx

        return compile_fx(graph, example_inputs)


class Compiled:
    """A model compiled by :func:`compile`; call it like the model; chapter 11.

    ``compile_seconds`` is the wall time of every warm-up so far (when compiling happens),
    ``options`` the Inductor settings compiled with. A call runs the compiled code and nothing
    else: in inference mode, where it was warmed up (a call from outside inference mode enters
    it for that call, so that it does not compile again).
    """

    def __init__(self, model: Model, options: dict[str, Any], dynamic: bool) -> None:
        self.options = dict(options)
        self.compile_seconds = 0.0
        self._gate = _Gate()
        self.fn = torch.compile(model, backend=self._gate, dynamic=dynamic)

    def warm_up(self, x: torch.Tensor) -> float:
        """Compile for inputs like ``x`` (its shape, this thread count) and run once; seconds.

        Inductor's ``options`` and the hushing of :func:`_quiet_compiler` hold for this block
        only. Warming up for an input already compiled for just runs it once.
        """
        validate.tensor("x", x, dims=4, floating=True)
        start = time.perf_counter()
        with _quiet_compiler():
            inductor_config = importlib.import_module("torch._inductor.config")
            with inductor_config.patch(self.options), torch.inference_mode():
                self._gate.open = True
                try:
                    self.fn(x)
                finally:
                    self._gate.open = False
        seconds = time.perf_counter() - start
        self.compile_seconds += seconds
        return seconds

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_inference_mode_enabled():
            return self.fn(x)
        with torch.inference_mode():
            return self.fn(x)


def compile(  # noqa: A001 - deploy.compile is the name the chapter teaches
    model: nn.Module | Model,
    example_input: torch.Tensor,
    *,
    freezing: bool = True,
    dynamic: bool = False,
    max_autotune: bool = False,
) -> Compiled:
    """``torch.compile`` for inference, compiled now on ``example_input``; chapter 11.

    Inductor (the default backend) with ``freezing``, the setting PyTorch recommends for CPU
    inference: the weights become constants, so BatchNorm folds away, convolutions get weights
    pre-packed for oneDNN, and element-wise work (ReLU, the shuffle's copies) fuses into a few
    generated C++ loops. The graph is specialised to the example's shape and to torch's thread
    count (``dynamic=True`` asks for one graph for all batch sizes, but batch 1 is always
    compiled apart); for another, call :meth:`Compiled.warm_up` with such an input first.
    ``max_autotune=True`` also times alternative kernels (minutes of compiling). Returns a
    :class:`Compiled` whose ``compile_seconds`` is the wall time of its warm-up on the example
    (the first call, which is when compiling happens). ``model`` (in eval mode, unless an
    exported graph) is not changed.
    """
    validate.function("model", model)
    if isinstance(model, nn.Module) and not isinstance(model, torch.fx.GraphModule):
        validate.module("model", model, eval_mode=True)  # exported graphs have no train/eval
    validate.tensor("example_input", example_input, dims=4, floating=True)
    validate.flag("freezing", freezing)
    validate.flag("dynamic", dynamic)
    validate.flag("max_autotune", max_autotune)
    options: dict[str, Any] = {"freezing": freezing}
    if max_autotune:
        options["max_autotune"] = True
    compiled = Compiled(model, options, dynamic)
    compiled.warm_up(example_input)
    return compiled


def export_roundtrip(model: nn.Module, example_input: torch.Tensor) -> float:
    """Export with ``torch.export``, save, load back, run: max |difference| to ``model``; ch. 11.

    ``torch.export`` captures the whole network as one graph of ATen operators (no Python left),
    the form that ahead-of-time compilers and other runtimes take. The saved program (a ``.pt2``
    archive, written here to memory) must reload and give the same outputs: this returns the
    largest absolute difference, 0.0 when the round trip is exact.
    """
    validate.module("model", model, eval_mode=True)
    x = validate.tensor("example_input", example_input, dims=4, floating=True)
    with torch.no_grad(), warnings.catch_warnings():
        # torch.export.save warns that it found no "complete tensor" when weights share storage
        # with views; it saves them all the same (the check below would fail otherwise).
        warnings.filterwarnings("ignore", message="No complete tensor found")
        program = torch.export.export(model, (x,))
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
        buffer.seek(0)
        loaded = torch.export.load(buffer).module()
        return (loaded(x) - model(x)).abs().max().item()
