"""The commands with options of their own show those on --help, not dock32's."""

from __future__ import annotations

import pytest

from dock32.cli import main


@pytest.mark.parametrize(("command", "usage"), [("publish", "usage: dock32 publish [-h] --to TO"), ("bump", "usage: dock32 bump [-h] [--dry-run]")])
def test_subcommand_help_is_its_own(command: str, usage: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(usage)


@pytest.mark.parametrize("option", ["--reporter=json", "--output-file=/dev/null"])
def test_another_reporter_is_refused_since_dock32_reads_the_run_from_its_own(option: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["build", option])
    assert stopped.value.code == 2
    name = option.split("=")[0]
    assert capsys.readouterr().err == (
        f"error: {name}: dock32 reports a run itself (hint: use --json for a machine-readable report, or plain `doit` for doit's reporters)\n"
    )
