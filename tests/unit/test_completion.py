"""``pagerbridge completion``: scripts generated from the argparse parser, exercised in a
real bash the way bash's programmable completion calls them."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from pagerbridge.cli import build_parser, main
from pagerbridge.cli.completion import bash_script, zsh_script


def complete(script: str, *words: str) -> list[str]:
    """COMPREPLY for the command line ``words`` (the last one being completed)."""
    bash = shutil.which("bash")
    assert bash is not None, "bash is needed to exercise the completion"
    line = " ".join(f"'{w}'" for w in words)
    program = (
        f"{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}\n"
        '_pagerbridge; printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        [bash, "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return [line for line in result.stdout.splitlines() if line]


@pytest.fixture(scope="module")
def script() -> str:
    return bash_script(build_parser())


def test_subcommands(script: str) -> None:
    assert {"operator", "relay", "doctor", "completion", "webhook-config"} <= set(
        complete(script, "pagerbridge", "")
    )
    assert complete(script, "pagerbridge", "do") == ["doctor"]


def test_flags_of_a_subcommand(script: str) -> None:
    flags = complete(script, "pagerbridge", "doctor", "--")
    assert {"--namespace", "--all-namespaces", "--kubeconfig", "--output"} <= set(flags)
    assert "--reveal" not in flags  # webhook-config's, not doctor's
    assert "--reveal" in complete(script, "pagerbridge", "webhook-config", "--")


def test_choices_and_positionals(script: str) -> None:
    assert complete(script, "pagerbridge", "doctor", "-o", "") == ["text", "json"]
    assert complete(script, "pagerbridge", "completion", "") == ["bash", "zsh", "-h", "--help"]
    assert complete(script, "pagerbridge", "completion", "z") == ["zsh"]


def test_value_flags_offer_no_words(script: str) -> None:
    assert complete(script, "pagerbridge", "doctor", "--namespace", "") == []


def test_every_subcommand_has_an_arm(script: str) -> None:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"    {name})" in script or f"    '{name}')" in script


def test_zsh_reuses_the_function_through_bashcompinit() -> None:
    script = zsh_script(build_parser())
    assert "bashcompinit" in script
    assert "complete -F _pagerbridge pagerbridge" in script


def test_cli_prints_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    assert "complete -F _pagerbridge pagerbridge" in capsys.readouterr().out
