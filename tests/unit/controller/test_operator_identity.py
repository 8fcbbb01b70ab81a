"""The operator starts as a user without a passwd entry (the image's uid 65532)."""

from __future__ import annotations

import getpass
import os
import pwd

import pytest

from pagerbridge.cli.operator import operator_identity


def test_identity_needs_no_passwd_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_entry(uid: int) -> pwd.struct_passwd:
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    for name in ("LOGNAME", "USER", "LNAME", "USERNAME", "POD_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    with pytest.raises(KeyError):
        getpass.getuser()  # what kopf's default identity would call
    assert operator_identity().endswith(f"/{os.getpid()}")


def test_identity_names_the_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "pagerbridge-7579f4f975-lxjct")
    assert operator_identity() == f"pagerbridge-7579f4f975-lxjct/{os.getpid()}"
