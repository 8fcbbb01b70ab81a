"""Fixtures of the chart tests: the real helm binary (a hard failure when missing)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chart.helm_tools import Helm, HelmNotFoundError, helm_binary


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    try:
        binary = helm_binary()
    except HelmNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    home: Path = tmp_path_factory.mktemp("helm-home")
    return Helm(binary, home)
