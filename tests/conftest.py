from __future__ import annotations

import os

import pytest

from tests import helpers

# Hide progress bars in test output (they go to stderr and are tested separately).
os.environ.setdefault("SHIFTKIT_PROGRESS", "0")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (``CI`` set, as .ci/run does) a skipped test fails: a tool a test needs (chromium,
    imagehash, timm, ...) missing there is a hole in CI, not a reason to look green."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {reason}"


def pytest_report_header(config):
    if helpers.mnist_source() == "shared":
        return f"MNIST for tests: the 60,000 digits in {helpers.MNIST_DIR}"
    return "MNIST for tests: the 12,000 digits shipped in shiftkit/data/mnist_subset.npz (no ../shared)"


@pytest.fixture(scope="session")
def example_folders(tmp_path_factory):
    """A small real two-domain example: 400 MNIST digits as web, 200 load_digits as target."""
    root = tmp_path_factory.mktemp("example")
    web_x, web_y = helpers.mnist(400)
    tgt_x, tgt_y = helpers.digits(200)
    helpers.write_folder(root / "web", web_x, web_y, prefix="mnist")
    helpers.write_folder(root / "target", tgt_x, tgt_y, prefix="digit")
    return root


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (used by the training and evaluation modules).

    Tiny 16-px batches gain nothing from a second thread, and lose a lot when other test
    processes share the two cores (OpenMP threads spin-wait for each other).
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def ray_cluster():
    """One real local Ray instance with 2 CPUs for the whole session (starting Ray costs seconds)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
