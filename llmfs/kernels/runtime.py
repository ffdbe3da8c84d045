"""Where the kernels run: import triton lazily, switch on its interpreter without a GPU, and check inputs.

Triton decides when a kernel is defined whether it is compiled for a GPU or run by its interpreter
(`TRITON_INTERPRET=1`), so the switch must be set before the first `@triton.jit`: `import_triton` does that.
"""

import importlib
import os
import sys

import torch

INTERPRET_ENV = "TRITON_INTERPRET"

# dtypes each kernel accepts: fp16/bf16 (and fp32) on a GPU; fp32 in the interpreter, which computes with
# NumPy (no bfloat16 there, and fp16 would only be slower, not closer to a GPU's arithmetic).
GPU_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
INTERPRETER_DTYPES = (torch.float32,)


class KernelInputError(ValueError):
    """An input a kernel does not handle (shape, dtype, layout); the message says what it supports."""


class NoGPUError(RuntimeError):
    """A kernel or benchmark that needs a CUDA GPU was asked to run without one."""


def use_interpreter_without_gpu() -> None:
    """Set `TRITON_INTERPRET=1` if there is no CUDA GPU, the variable is unset and triton is not imported yet.

    Triton reads the variable when it is imported (its own `tl.max`, `tl.sum`... are kernels too), so it
    must be set first; `import llmfs.kernels` calls this, and the test suite calls it before any test.
    """
    if INTERPRET_ENV not in os.environ and "triton" not in sys.modules and not torch.cuda.is_available():
        os.environ[INTERPRET_ENV] = "1"


def import_triton():
    """Return `(triton, triton.language)`, first switching on the interpreter if there is no CUDA GPU.

    An explicit `TRITON_INTERPRET` in the environment is left as it is.
    """
    use_interpreter_without_gpu()
    if INTERPRET_ENV not in os.environ and not torch.cuda.is_available():
        raise NoGPUError(
            "there is no CUDA GPU, and triton was imported before its interpreter was switched on, so Triton "
            f"kernels cannot run in this process. Set {INTERPRET_ENV}=1 before anything imports triton: "
            f"import llmfs.kernels first, or start Python with {INTERPRET_ENV}=1 in the environment"
        )
    try:
        triton = importlib.import_module("triton")
        language = importlib.import_module("triton.language")
    except ImportError as err:
        raise ImportError(
            "llmfs.kernels needs the `triton` package, an optional dependency of llmfs: "
            "pip install 'llmfs[kernels]' (or pip install triton)"
        ) from err
    return triton, language


def interpreting() -> bool:
    """True if the kernels run in Triton's interpreter (on the CPU) rather than compiled for a GPU.

    That is what `TRITON_INTERPRET` says, or, where it is unset, whether there is no CUDA GPU.
    """
    value = os.environ.get(INTERPRET_ENV)
    if value is None:
        return not torch.cuda.is_available()
    return value.lower() in ("1", "true", "on", "yes")


def kernel_device() -> str:
    """Where kernel inputs must live: "cpu" for the interpreter, else "cuda"."""
    return "cpu" if interpreting() else "cuda"


def supported_dtypes() -> tuple[torch.dtype, ...]:
    """The dtypes the kernels accept where they run now: the interpreter's, or a GPU's."""
    return INTERPRETER_DTYPES if interpreting() else GPU_DTYPES


def check_inputs(kernel: str, **tensors: torch.Tensor) -> None:
    """Refuse inputs `kernel` cannot handle, with a message naming what it supports.

    Every tensor must be contiguous, share one supported floating dtype, and live where the kernels run:
    on a CUDA device, or anywhere when Triton's interpreter is on.
    """
    dtypes = supported_dtypes()
    names = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
    where = "Triton's interpreter" if interpreting() else "a GPU"
    first_dtype = None
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise KernelInputError(f"{kernel}: {name} must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.dtype not in dtypes:
            raise KernelInputError(
                f"{kernel}: {name} has dtype {str(tensor.dtype).removeprefix('torch.')}; "
                f"in {where} the kernels support {names}"
            )
        if first_dtype is not None and tensor.dtype != first_dtype:
            raise KernelInputError(f"{kernel}: {name} has dtype {tensor.dtype}, the other inputs {first_dtype}")
        first_dtype = tensor.dtype
        if not tensor.is_contiguous():
            raise KernelInputError(
                f"{kernel}: {name} is not contiguous (strides {tuple(tensor.stride())}); the kernels read "
                f"contiguous rows: pass {name}.contiguous()"
            )
        if not interpreting() and tensor.device.type != "cuda":
            raise NoGPUError(
                f"{kernel}: {name} is on {tensor.device}, but Triton compiles these kernels for a CUDA GPU. "
                f"Move the inputs to 'cuda', or, on a machine without a GPU, let llmfs.kernels run them in "
                f"Triton's interpreter ({INTERPRET_ENV}=1, set before triton is imported)"
            )
