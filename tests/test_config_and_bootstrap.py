"""Settings precedence (--set > spec > config > default), torchrun wrapping, --debug."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path


def _dry_run(cli, spec: Path, *args: str) -> dict:
    result = cli("run", str(spec), "--dry-run", *args, check_rc=0)
    return json.loads(result.stdout)


def test_backend_settings_precedence(cli, write_spec, launch_home):
    launch_home.mkdir(parents=True, exist_ok=True)
    plain = write_spec("name: p\nrun: 'true'\n", "plain.yaml")
    assert _dry_run(cli, plain)["payload"]["cancel_grace_s"] == 10.0  # built-in default

    (launch_home / "config.toml").write_text('[backends.local]\ncancel_grace = "45s"\n')
    assert _dry_run(cli, plain)["payload"]["cancel_grace_s"] == 45.0  # config beats default

    in_spec = write_spec("name: p\nrun: 'true'\nbackends:\n  local:\n    cancel_grace: 2m\n", "spec.yaml")
    assert _dry_run(cli, in_spec)["payload"]["cancel_grace_s"] == 120.0  # spec beats config

    overridden = _dry_run(cli, in_spec, "--set", "backends.local.cancel_grace=7s")
    assert overridden["payload"]["cancel_grace_s"] == 7.0  # --set beats spec


def test_bad_config_value_names_the_config_file(cli, write_spec, launch_home):
    launch_home.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text('[backends.local]\ncancel_grace = "soon"\n')
    result = cli("run", str(write_spec("name: p\nrun: 'true'\n")), "--dry-run")
    assert result.returncode == 2
    assert "config.toml" in result.stderr and "backends.local.cancel_grace" in result.stderr
    assert "Traceback" not in result.stderr


def test_broken_config_toml_is_one_clear_error(cli, write_spec, launch_home):
    launch_home.mkdir(parents=True, exist_ok=True)
    (launch_home / "config.toml").write_text("[backends.local\n")
    result = cli("run", str(write_spec("name: p\nrun: 'true'\n")), "--dry-run")
    assert result.returncode == 2
    assert "invalid TOML" in result.stderr and "Traceback" not in result.stderr


def test_debug_shows_the_traceback(cli, tmp_path):
    missing = tmp_path / "nope.yaml"
    quiet = cli("run", str(missing))
    loud = cli("--debug", "run", str(missing))
    assert quiet.returncode == 2 and "Traceback" not in quiet.stderr and "no such spec file" in quiet.stderr
    assert "Traceback" in loud.stderr


def _fake_torchrun(bin_dir: Path) -> None:
    """Stands in for torchrun: records its argv (one per line), then runs the worker command."""
    bin_dir.mkdir()
    script = bin_dir / "torchrun"
    script.write_text(
        "#!/bin/sh\n"
        'for arg in "$@"; do printf "%s\\n" "$arg"; done > "$TORCHRUN_ARGS_FILE.$LAUNCH_NODE_RANK"\n'
        "while [ $# -gt 0 ] && [ \"$1\" != --no-python ]; do shift; done\n"
        "shift\n"
        'exec "$@"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_torchrun_gets_the_rendezvous_and_the_command_verbatim(cli, write_spec, tmp_path):
    _fake_torchrun(tmp_path / "bin")
    args_file = tmp_path / "torchrun-args"
    hostile = "echo \"it's $((1+1))\" `echo tick` ; echo second"
    spec = write_spec(
        "name: dist\n"
        f"run: {json.dumps(hostile)}\n"
        "resources:\n  accelerators: L4:2\n  nodes: 2\n"
        "distributed: torchrun\n"
    )
    env = {"PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}", "TORCHRUN_ARGS_FILE": str(args_file)}
    result = cli("run", str(spec), "--follow", env=env, check_rc=0)
    # the worker shell ran the user's line as a shell line, on both nodes
    assert result.stdout.count("it's 2 tick") == 2 and result.stdout.count("second") == 2

    for rank in (0, 1):
        argv = Path(f"{args_file}.{rank}").read_text().splitlines()
        assert "--nnodes=2" in argv and "--nproc_per_node=2" in argv
        assert f"--node_rank={rank}" in argv and "--master_addr=127.0.0.1" in argv
        assert any(a.startswith("--master_port=") for a in argv)
        # the command reaches torchrun as one argument, untouched
        assert argv[-3:] == ["sh", "-c", hostile]
