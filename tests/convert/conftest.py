import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _torch_single_thread():
    # Small networks: PyTorch's OpenMP threads only fight TensorFlow's thread
    # pool for the CPU (a 2-core machine ran these tests ~5x slower).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
