"""scripts/install.sh under --root: a real install (venv + pip build of the checkout),
idempotent re-runs, credential handling, uninstall and purge.

The package install is real but offline: the venv is made by Debian's /usr/bin/python3 with
--system-site-packages so pip can build the checkout with Debian's setuptools and wheel
(--no-build-isolation --no-index), and --no-deps leaves the dependencies out (no network in
tests). The test that runs the installed `edgecap` supplies the dependencies from the test
interpreter's site-packages, after the installed venv's own, so edgecap itself is the copy
that install.sh put under the root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest

from edgecap.config.secrets import ASSEMBLYAI_API_KEY, MQTT_PASSWORD, TOKEN_SERVICE_CREDENTIAL

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = Path("/usr/bin/python3")
OFFLINE_PIP = [
    "--python",
    str(SYSTEM_PYTHON),
    "--system-site-packages",
    "--pip-arg=--no-index",
    "--pip-arg=--no-deps",
    "--pip-arg=--no-build-isolation",
]
SECRET = "team-credential-0123456789"
CHANGE_WORDS = ("created", "installed", "updated", "removed", "recreated")


def _why_no_offline_build() -> str | None:
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is missing"
    probe = subprocess.run(
        [
            str(SYSTEM_PYTHON),
            "-c",
            "import sys, ensurepip, venv, setuptools, wheel; sys.exit(sys.version_info < (3, 11))",
        ],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        return (
            f"{SYSTEM_PYTHON} >= 3.11 with python3-venv, python3-setuptools and python3-wheel "
            "is needed to build the checkout offline"
        )
    return None


_NO_OFFLINE_BUILD = _why_no_offline_build()
needs_offline_build = pytest.mark.skipif(
    _NO_OFFLINE_BUILD is not None, reason=_NO_OFFLINE_BUILD or ""
)


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the parts of the repository install.sh uses, so the test neither sees
    edits made meanwhile nor leaves anything in the real checkout."""
    dest = tmp_path_factory.mktemp("checkout")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("edgecap", "config", "docs", "systemd"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, dest / name)
    (dest / "scripts").mkdir()
    shutil.copy2(REPO / "scripts" / "install.sh", dest / "scripts" / "install.sh")
    return dest


def clean_env() -> dict[str, str]:
    """The environment without anything that would make Python or edgecap look elsewhere."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "CREDENTIALS_DIRECTORY", "EDGECAP_"))
    }


def run_install(
    checkout: Path, root: Path, *args: str, stdin: str = "", expect: int = 0
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["bash", str(checkout / "scripts" / "install.sh"), "--root", str(root), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=clean_env(),
        cwd=root.parent,
        timeout=300,
        check=False,
    )
    assert result.returncode == expect, result.stdout + result.stderr
    return result


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path under root with its type, mode and content (and a file's mtime)."""
    state: dict[str, tuple[object, ...]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        rel = str(path.relative_to(root))
        if path.is_symlink():
            state[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            state[rel] = ("dir", oct(info.st_mode & 0o7777))
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            state[rel] = ("file", oct(info.st_mode & 0o7777), digest, info.st_mtime_ns)
    return state


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


def item_lines(output: str) -> list[str]:
    """The per-item report lines (before the summary and the next steps)."""
    report = output.split("\nNext steps:", maxsplit=1)[0]
    return [line for line in report.splitlines() if line.startswith("  ") and line[2] != " "]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@needs_offline_build
def test_install_lays_out_venv_config_credential_and_unit(checkout: Path, root: Path) -> None:
    result = run_install(checkout, root, *OFFLINE_PIP, "--credential", "-", stdin=SECRET + "\n")

    assert (root / "opt/edgecap/venv/bin/edgecap").is_file()
    unit = root / "etc/systemd/system/edgecap.service"
    assert unit.read_bytes() == (checkout / "systemd/edgecap.service").read_bytes()
    config = root / "etc/edgecap/edgecap.toml"
    assert config.read_bytes() == (checkout / "config/edgecap.toml").read_bytes()
    assert mode(config) == 0o644  # the service's dynamic user must read it
    example = root / "opt/edgecap/share/edgecap.toml.example"
    assert example.read_bytes() == config.read_bytes()

    credentials = root / "etc/edgecap/credentials"
    assert mode(credentials) == 0o700
    credential = credentials / TOKEN_SERVICE_CREDENTIAL.credential
    assert credential.read_text() == SECRET + "\n"
    assert mode(credential) == 0o600
    # Nothing else needs a drop-in: the unit loads the token-service credential itself.
    assert not (root / "etc/systemd/system/edgecap.service.d").exists()

    lines = item_lines(result.stdout)
    assert any(line.split()[:2] == ["apt", "packages"] and "skipped" in line for line in lines)
    assert any(line.split()[0] == "service" and "skipped" in line for line in lines)
    assert "check-config" in result.stdout
    assert "journalctl -u edgecap -f" in result.stdout
    assert "mosquitto_sub" in result.stdout


@needs_offline_build
def test_second_run_changes_nothing_and_keeps_an_edited_config(checkout: Path, root: Path) -> None:
    cred_file = root.parent / "credential.txt"
    cred_file.write_text(f"  {SECRET}  \n")
    run_install(checkout, root, *OFFLINE_PIP, "--credential-file", str(cred_file))
    config = root / "etc/edgecap/edgecap.toml"
    edited = config.read_text().replace('device = "default"', 'device = "plughw:CARD=Mic,DEV=0"')
    assert edited != config.read_text()
    config.write_text(edited)
    before = snapshot(root)

    again = run_install(checkout, root, *OFFLINE_PIP, "--credential-file", str(cred_file))

    assert snapshot(root) == before
    assert config.read_text() == edited
    assert "Nothing changed" in again.stdout
    lines = item_lines(again.stdout)
    assert lines, again.stdout
    for line in lines:
        assert not any(word in line for word in CHANGE_WORDS), line
    assert any("config" in line and "kept" in line for line in lines)
    assert any("edgecap package" in line and "unchanged" in line for line in lines)


@needs_offline_build
def test_installed_edgecap_runs_and_accepts_the_installed_config(
    checkout: Path, root: Path
) -> None:
    system_minor = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if system_minor != str(sys.version_info[:2]):
        pytest.skip(
            f"the dependencies of this Python {sys.version_info[:2]} cannot be lent "
            f"to the venv's Python {system_minor}"
        )
    run_install(checkout, root, *OFFLINE_PIP, "--credential", "-", stdin=SECRET)
    venv = root / "opt/edgecap/venv"
    venv_site = next((venv / "lib").glob("python3*/site-packages"))
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    env = clean_env() | {"PYTHONPATH": os.pathsep.join([str(venv_site), *sorted(deps)])}
    edgecap = str(venv / "bin/edgecap")
    config = str(root / "etc/edgecap/edgecap.toml")

    where = subprocess.run(
        [str(venv / "bin/python"), "-c", "import edgecap; print(edgecap.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=True,
    )
    assert Path(where.stdout.strip()).is_relative_to(venv_site)

    version = subprocess.run(
        [edgecap, "--version"], capture_output=True, text=True, env=env, cwd=root, check=False
    )
    expected = tomllib.loads((checkout / "pyproject.toml").read_text())["project"]["version"]
    assert version.stdout.strip() == f"edgecap {expected}", version.stderr

    # The way the next steps tell the user to check: credentials from the installed directory.
    with_credential = env | {"CREDENTIALS_DIRECTORY": str(root / "etc/edgecap/credentials")}
    ok = subprocess.run(
        [edgecap, "check-config", "--config", config],
        capture_output=True,
        text=True,
        env=with_credential,
        cwd=root,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("config OK")

    missing = subprocess.run(
        [edgecap, "check-config", "--config", config],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        check=False,
    )
    assert missing.returncode == 78
    assert TOKEN_SERVICE_CREDENTIAL.credential in missing.stderr


@needs_offline_build
def test_extra_secrets_get_a_drop_in_that_systemd_accepts(
    checkout: Path, root: Path, tmp_path: Path
) -> None:
    api_key = tmp_path / "api-key"
    api_key.write_text("aai-key-abc\n")
    password = tmp_path / "mqtt-password"
    password.write_text("broker-pass\n")
    run_install(
        checkout,
        root,
        *OFFLINE_PIP,
        "--api-key-file",
        str(api_key),
        "--mqtt-password-file",
        str(password),
    )
    credentials = root / "etc/edgecap/credentials"
    for spec, content in ((ASSEMBLYAI_API_KEY, "aai-key-abc\n"), (MQTT_PASSWORD, "broker-pass\n")):
        assert (credentials / spec.credential).read_text() == content
        assert mode(credentials / spec.credential) == 0o600
    dropin = root / "etc/systemd/system/edgecap.service.d/credentials.conf"
    loads = [line for line in dropin.read_text().splitlines() if line.startswith("LoadCredential")]
    # The reset drops the unit's token-service credential: that file does not exist, and a
    # missing LoadCredential= source would stop the unit from starting.
    assert loads == [
        "LoadCredential=",
        f"LoadCredential={ASSEMBLYAI_API_KEY.credential}:/etc/edgecap/credentials/"
        f"{ASSEMBLYAI_API_KEY.credential}",
        f"LoadCredential={MQTT_PASSWORD.credential}:/etc/edgecap/credentials/"
        f"{MQTT_PASSWORD.credential}",
    ]

    analyze = shutil.which("systemd-analyze")
    true_bin = shutil.which("true")
    if analyze is not None and true_bin is not None:
        unit_dir = tmp_path / "units"
        (unit_dir / "edgecap.service.d").mkdir(parents=True)
        unit_text = (root / "etc/systemd/system/edgecap.service").read_text()
        (unit_dir / "edgecap.service").write_text(
            unit_text.replace("ExecStart=/opt/edgecap/venv/bin/edgecap ", f"ExecStart={true_bin} ")
        )
        shutil.copy(dropin, unit_dir / "edgecap.service.d" / dropin.name)
        verify = subprocess.run(
            [analyze, "verify", str(unit_dir / "edgecap.service")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert verify.returncode == 0
        assert verify.stderr == ""

    # Back to the token service only: the drop-in is no longer needed and goes away.
    (credentials / ASSEMBLYAI_API_KEY.credential).unlink()
    (credentials / MQTT_PASSWORD.credential).unlink()
    result = run_install(checkout, root, *OFFLINE_PIP, "--credential", "-", stdin=SECRET)
    assert not dropin.exists()
    assert "credentials drop-in" in result.stdout


@needs_offline_build
def test_uninstall_keeps_config_credentials_and_state_until_purge(
    checkout: Path, root: Path
) -> None:
    run_install(checkout, root, *OFFLINE_PIP, "--credential", "-", stdin=SECRET)
    # What a running service and its admin leave behind: state and an own drop-in.
    state = root / "var/lib/private/edgecap"
    state.mkdir(parents=True)
    (state / "spool.jsonl").write_text("{}\n")
    (root / "var/lib/edgecap").symlink_to("private/edgecap")
    override = root / "etc/systemd/system/edgecap.service.d/override.conf"
    override.parent.mkdir(parents=True)
    override.write_text("[Service]\nEnvironment=EDGECAP_LOGGING__LEVEL=debug\n")
    config = root / "etc/edgecap/edgecap.toml"
    credential = root / "etc/edgecap/credentials" / TOKEN_SERVICE_CREDENTIAL.credential
    kept = {p: p.read_bytes() for p in (config, credential, state / "spool.jsonl", override)}

    run_install(checkout, root, "--uninstall")

    assert not (root / "etc/systemd/system/edgecap.service").exists()
    assert not (root / "opt/edgecap").exists()
    assert {p: p.read_bytes() for p in kept} == kept
    assert mode(credential) == 0o600

    again = run_install(checkout, root, "--uninstall")
    assert "Nothing changed" in again.stdout

    run_install(checkout, root, "--uninstall", "--purge")

    for gone in ("etc/edgecap", "var/lib/private/edgecap", "etc/systemd/system/edgecap.service.d"):
        assert not (root / gone).exists(), gone
    assert not (root / "var/lib/edgecap").is_symlink()


def test_an_empty_credential_is_refused_before_anything_is_installed(
    checkout: Path, root: Path
) -> None:
    result = run_install(checkout, root, "--credential", "-", stdin="  \n", expect=1)
    assert "empty" in result.stderr
    assert list(root.iterdir()) == []


def test_a_multi_line_credential_file_is_refused(
    checkout: Path, root: Path, tmp_path: Path
) -> None:
    two_lines = tmp_path / "cred"
    two_lines.write_text("first\nsecond\n")
    result = run_install(checkout, root, "--credential-file", str(two_lines), expect=1)
    assert "single line" in result.stderr
    assert list(root.iterdir()) == []


def test_unknown_option_prints_usage_and_exits_2(checkout: Path, root: Path) -> None:
    result = run_install(checkout, root, "--frobnicate", expect=2)
    assert "unknown option: --frobnicate" in result.stderr
    assert "Usage:" in result.stderr


def test_purge_without_uninstall_is_refused(checkout: Path, root: Path) -> None:
    result = run_install(checkout, root, "--purge", expect=1)
    assert "--purge only goes with --uninstall" in result.stderr
