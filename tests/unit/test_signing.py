"""Choosing the signing key from gpg's --with-colons listing, and turning gpg's failures into one line."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from dock32.core.errors import PackageError
from dock32.model.config import load_config, load_packages, load_toolchains
from dock32.model.project import Project
from dock32.model.settings import settings_from_env
from dock32.packaging.signing import KEYRING, SecretKey, choose_key, parse_secret_keys, signing_failure
from dock32.pipeline.plan import plan_build

ROOT = Path(__file__).resolve().parents[2]

OURS = "61774CC7BDFF6C57CE707D33A2A6445C488C7FA0"
EXPIRED = "C0BE0238A0AB9F410AEE2E0D126534FCB889E4E8"
# `gpg --with-colons --list-secret-keys` (gpg 2.2.40) for a usable ed25519 key and an expired one, with a subkey.
LISTING = f"""sec:u:255:22:A2A6445C488C7FA0:1795893991:::u:::scSC:::+::ed25519:::0:
fpr:::::::::{OURS}:
grp:::::::::D26C28F71B2A6197F8DA634733EE914348F84680:
uid:u::::1795893991::32CAB07D96B62A5742140B6A1D8542EEEB1E1601::dock32 test <test@dock32.invalid>::::::::::0:
uid:u::::1795893991::42CAB07D96B62A5742140B6A1D8542EEEB1E1601::dock32 other uid <other@dock32.invalid>::::::::::0:
sec:e:255:22:126534FCB889E4E8:1795894050:1795894051::u:::sc:::+::ed25519:::0:
fpr:::::::::{EXPIRED}:
grp:::::::::E0759BE152EA16ADBC755375651C3BF9340446B8:
uid:e::::1795894050::05F6C3D8BCF9456F7D45B75D204C5DED91AE64C5::exp <exp@dock32.invalid>::::::::::0:
ssb:e:255:18:1111111111111111:1795894050:1795894051:::::e:::+::cv25519::
fpr:::::::::AAAA000000000000000000001111111111111111:
"""


def test_parse_reads_each_primary_key_once_with_its_first_user_id() -> None:
    keys = parse_secret_keys(LISTING)
    assert [(k.fingerprint, k.validity, k.capabilities, k.user_id) for k in keys] == [
        (OURS, "u", "scSC", "dock32 test <test@dock32.invalid>"),
        (EXPIRED, "e", "sc", "exp <exp@dock32.invalid>"),
    ]
    assert parse_secret_keys("") == []


def test_choose_the_one_usable_key() -> None:
    (ours, _) = parse_secret_keys(LISTING)
    assert choose_key("test@dock32.invalid", [ours]).fingerprint == OURS


@pytest.mark.parametrize(
    ("keys", "message", "hint"),
    [
        ([], "signing key 'K': no secret key for it in", "gpg --batch --import"),
        (parse_secret_keys(LISTING), f"names 2 secret keys in .*: {OURS} \\(dock32 test <test@dock32.invalid>\\), {EXPIRED}", "full fingerprint"),
        (parse_secret_keys(LISTING)[1:], f"key {EXPIRED} cannot sign: expired", f"gpg --quick-set-expire {EXPIRED} 1y"),
    ],
)
def test_choose_key_names_the_key_and_the_fix(keys: list[SecretKey], message: str, hint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GNUPGHOME", "/ci/gnupg")
    with pytest.raises(PackageError, match=message) as raised:
        choose_key("K", keys)
    assert raised.value.hint is not None and hint in raised.value.hint
    assert "\n" not in str(raised.value)
    if not keys:
        assert "/ci/gnupg" in raised.value.message


def test_gnupghome_defaults_to_the_users_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GNUPGHOME", raising=False)
    with pytest.raises(PackageError, match="in ~/.gnupg"):
        choose_key("K", [])


# What gpg 2.2 prints in --batch --pinentry-mode error (--status-fd 1 first, then stderr).
NO_PINENTRY = f"""[GNUPG:] KEY_CONSIDERED {OURS} 2
[GNUPG:] BEGIN_SIGNING H8
[GNUPG:] FAILURE sign 67108949
gpg: signing failed: No pinentry
gpg: Release: clear-sign failed: No pinentry
"""
NO_TTY = "gpg: signing failed: Inappropriate ioctl for device\ngpg: Release: clear-sign failed: Inappropriate ioctl for device\n"
UNUSABLE = f"""[GNUPG:] KEY_CONSIDERED {OURS} 3
[GNUPG:] INV_SGNR 9 {OURS}
[GNUPG:] FAILURE sign 54
gpg: skipped "{OURS}": Unusable secret key
gpg: Release: clear-sign failed: Unusable secret key
"""


@pytest.mark.parametrize(
    ("output", "message"),
    [
        (NO_PINENTRY, f"key {OURS} has a passphrase and gpg-agent does not hold it"),
        (NO_TTY, "has a passphrase"),
        (UNUSABLE, f"gpg cannot use the secret key of {OURS}"),
        ("gpg: Release: clear-sign failed: disk full\n", "gpg failed to sign with .*: Release: clear-sign failed: disk full"),
    ],
)
def test_signing_failures_are_one_line_naming_the_key(output: str, message: str) -> None:
    error = signing_failure("test@dock32.invalid", OURS, output)
    assert error.message.startswith("signing key 'test@dock32.invalid': ")
    assert "\n" not in str(error)
    assert re.search(message, error.message), error.message


def test_the_repository_task_targets_the_signatures_and_keyring_only_with_a_key(tmp_path: Path) -> None:
    config = load_config(ROOT / "buildcfg.yaml")
    env = {"DOCK32_CACHE_DIR": str(tmp_path / "c"), "DOCK32_BUILD_DIR": str(tmp_path / "b"), "DOCK32_DIST_DIR": str(tmp_path / "d")}
    settings = settings_from_env(ROOT, env=env)
    packages = load_packages(ROOT / "packaging" / "packages.yaml", config)
    signed = dataclasses.replace(config, packaging=dataclasses.replace(config.packaging, gpg_key=OURS))
    dist = tmp_path / "d" / config.target
    for cfg, expected in ((config, set()), (signed, {dist / "InRelease", dist / "Release.gpg", dist / KEYRING})):
        (repository,) = [t for t in plan_build(Project.of(cfg, load_toolchains(ROOT / "toolchains"), settings, packages)) if t.task_id == "repository"]
        assert {dist / "Release", dist / "SHA256SUMS"} <= set(repository.targets)
        assert set(repository.targets) & {dist / "InRelease", dist / "Release.gpg", dist / KEYRING} == expected
