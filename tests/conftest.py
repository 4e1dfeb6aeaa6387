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
    return "MNIST for tests: the 12,000 digits shipped in shiftkit/ingest/data/mnist_subset.npz (no ../shared)"


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
    from shiftkit.core.errors import ConfigError
    from shiftkit.runtime import engine
    from shiftkit.runtime import ray as ray_engine

    for attempt in range(1, 4):  # each connect tries 3 times: Ray's start-up window is short on a loaded machine
        try:
            ray = ray_engine.connect(engine.make("ray"), cpus=2)  # shiftkit's own way of starting one
            break
        except ConfigError:
            if attempt == 3:
                raise
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible server (moto's standalone server) on 127.0.0.1, for the whole session.

    The code under test reaches it through its ordinary client path: s3fs / boto read the endpoint
    and the (dummy) credentials from the standard AWS environment variables set here.
    """
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto's S3 server did not start") from None
            time.sleep(0.2)
    env = {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield url
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        proc.wait(timeout=30)
