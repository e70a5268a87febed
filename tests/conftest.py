"""Fixtures shared by the test modules."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one torch thread, then restore the count.

    Small tensors run as fast on one thread, and one thread cannot stall in an OpenMP barrier
    when other processes keep the cores busy (a 2-thread forward can then take 100x longer).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
