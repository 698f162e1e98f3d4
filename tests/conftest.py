import pytest


@pytest.fixture(autouse=True)
def _may_train(monkeypatch):
    # Unit tests train tiny runs in temporary stores, whatever the caller's store-only setting.
    monkeypatch.delenv("KDREPRO_STORE_ONLY", raising=False)


@pytest.fixture
def tmp_store(tmp_path, monkeypatch):
    """A result store and cache of the test's own, so tests train into neither the repository's nor
    each other's."""
    monkeypatch.setenv("KDREPRO_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("KDREPRO_CACHE", str(tmp_path / "cache"))
    return tmp_path
