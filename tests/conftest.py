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
