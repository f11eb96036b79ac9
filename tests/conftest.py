import importlib.util
import os
from pathlib import Path

import pytest

# Tests never touch the user's cache or the network: every test gets its own empty cache
# and no download mirrors unless it sets them.
os.environ.setdefault("CONNLAB_MIRRORS", "")

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CONNLAB_DATA", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.setenv("CONNLAB_MIRRORS", "")


# --- the page tests' browser: pytest-playwright's session-wide ``browser`` on Debian's Chromium -------------
# One browser for the whole session: a test that opened its own sync_playwright() beside it would find
# pytest-playwright's event loop running and fail, so every page test takes this fixture.

CHROMIUM = Path("/usr/bin/chromium")

if importlib.util.find_spec("pytest_playwright") is None:
    @pytest.fixture
    def browser():
        pytest.skip("needs playwright and pytest-playwright (pip install -e '.[test]')")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright's ``browser`` launches the system's Chromium: no browser download."""
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": ["--no-sandbox"]}
