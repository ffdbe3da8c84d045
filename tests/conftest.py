"""Test-session setup: without a CUDA GPU, Triton kernels run in Triton's interpreter.

`TRITON_INTERPRET` must be set before anything imports triton (transformers does, in the parity tests), so
it is set here, when pytest first loads the tests folder.
"""

import pytest
import torch

from llmfs.kernels.runtime import use_interpreter_without_gpu

use_interpreter_without_gpu()


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module of tiny models and small loops: faster, and much faster on a busy machine.

    A module opts in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
