"""A cell's load record: the host's load averages where the platform has them, None where it has not."""

from __future__ import annotations

import os

import pytest

from lm_eval_bias.study import cell


def test_load_average_rounds_the_hosts_three_averages(monkeypatch):
    monkeypatch.setattr(cell.os, "getloadavg", lambda: (0.123, 1.0, 2.555))
    assert cell._load_average() == [0.12, 1.0, round(2.555, 2)]


def _unobtainable():
    raise OSError("load average unobtainable")


@pytest.mark.parametrize("platform", ["no_getloadavg", "unobtainable"])
def test_no_load_average_is_none(monkeypatch, platform):
    if platform == "no_getloadavg":  # Windows' os module has no getloadavg
        monkeypatch.delattr(os, "getloadavg")
    else:
        monkeypatch.setattr(cell.os, "getloadavg", _unobtainable)
    assert cell._load_average() is None
