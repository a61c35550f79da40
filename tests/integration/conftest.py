"""Fixtures: stand-in Places server, herds in both process modes, clean teardown."""

import os

import pytest

from herdlib import Herd, Standin


@pytest.fixture(params=["inproc", "split"])
def mode(request):
    """Each herd test runs with all roles in one process, and one process per role."""
    return request.param


@pytest.fixture
def standin(tmp_path):
    s = Standin(str(tmp_path))
    yield s
    s.stop()


@pytest.fixture
def make_herd(tmp_path, mode):
    """Build herds for a test; at teardown stop them and check they stopped cleanly
    (exit code 0: under the sanitizers, that also means no leak)."""
    herds = []

    def make(**kwargs):
        sub = os.path.join(str(tmp_path), f"herd{len(herds)}")
        os.makedirs(sub)
        kwargs.setdefault("split", mode == "split")
        h = Herd(sub, **kwargs)
        herds.append(h)
        return h

    yield make
    bad = {}
    for h in herds:
        for name, codes in h.stop().items():
            if any(c != 0 for c in codes):
                bad[name] = codes
    assert not bad, f"nodes did not stop cleanly: {bad}"
