"""Triton kernels for chapter 10, each with a PyTorch reference: a vector add, a fused softmax, RMSNorm and
RoPE, a tiled matmul, and a FlashAttention-2 forward with causal block skipping.

Importing this package needs neither triton nor a GPU: triton is imported on the first kernel launch (an
optional dependency: `pip install 'llmfs[kernels]'`). Without a CUDA GPU the kernels run in Triton's
interpreter, on CPU tensors, in float32 — slowly, but line by line as on a GPU.
"""

from .ops import HEAD_DIMS, MAX_ROW, add, flash_attention, launch, matmul, rms_norm, rope, softmax
from .reference import (add_reference, attention_by_blocks, attention_reference, matmul_reference, rms_norm_reference,
                        rope_reference, softmax_reference)
from .runtime import (GPU_DTYPES, INTERPRETER_DTYPES, KernelInputError, NoGPUError, import_triton, interpreting,
                      kernel_device, supported_dtypes, use_interpreter_without_gpu)

use_interpreter_without_gpu()
