import pytest


@pytest.fixture(autouse=True)
def _may_train(monkeypatch):
    # Unit tests train tiny runs in temporary stores, whatever the caller's store-only setting.
    monkeypatch.delenv("KDREPRO_STORE_ONLY", raising=False)
