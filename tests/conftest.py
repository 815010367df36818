"""Suite-wide settings."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    # The tests use tiny models, where a second thread costs more in synchronisation than it gains; and it lets a
    # busy 2-core machine run the suite without threads fighting each other (seen: 10-50x slower steps).
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
