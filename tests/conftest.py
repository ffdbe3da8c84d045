"""Test-session setup: without a CUDA GPU, Triton kernels run in Triton's interpreter.

`TRITON_INTERPRET` must be set before anything imports triton (transformers does, in the parity tests), so
it is set here, when pytest first loads the tests folder.
"""

from llmfs.kernels.runtime import use_interpreter_without_gpu

use_interpreter_without_gpu()
