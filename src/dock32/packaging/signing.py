"""Signing an apt repository's Release with GnuPG: InRelease, Release.gpg and the public keyring users trust.

The key is `packaging.gpg_key` (a fingerprint or a user id) in the keyring of $GNUPGHOME (default ~/.gnupg), as
gpg itself finds it; CI imports its secret key there. dock32 signs with --batch and never prompts: a key with a
passphrase must already be unlocked in gpg-agent. Every failure gpg reports is turned into one line naming the
key and the fix.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dock32.core import atomic
from dock32.core.errors import PackageError
from dock32.core.run import capture, command_line, open_log

# The binary public keyring written beside a signed repository, for `deb [signed-by=...]`.
KEYRING = "dock32-archive-keyring.gpg"
SIGNATURES = ("InRelease", "Release.gpg")

# gpg's --with-colons validity field of a key that cannot be used, and what to tell the user.
_UNUSABLE = {"e": "expired", "r": "revoked", "d": "disabled", "i": "invalid", "n": "not valid"}
# What gpg prints (in --batch, --pinentry-mode error) when signing needs a passphrase it cannot ask for:
# "No pinentry" (libgpg-error code 85); a pinentry that could not open a terminal, or was cancelled, or gave a
# wrong one, on setups where the agent still tries one.
_PASSPHRASE_MARKERS = ("No pinentry", "Inappropriate ioctl for device", "Bad passphrase", "Operation cancelled", "No passphrase given", "Timeout")


@dataclass(frozen=True)
class SecretKey:
    fingerprint: str  # the primary key's
    validity: str  # gpg's --with-colons field 2
    capabilities: str  # field 12: upper-case letters are what the key as a whole can do now
    user_id: str


def gnupg_home() -> str:
    """The keyring gpg uses, for messages."""
    return os.environ.get("GNUPGHOME") or "~/.gnupg"


def parse_secret_keys(colons: str) -> list[SecretKey]:
    """The primary keys in `gpg --with-colons --list-secret-keys` output: each sec: record, the fpr: right after it
    and its first uid:."""
    found: list[dict[str, str]] = []
    for line in colons.splitlines():
        fields = line.split(":")
        if fields[0] == "sec" and len(fields) > 11:
            found.append({"validity": fields[1], "capabilities": fields[11]})
        elif found and fields[0] == "fpr" and "fingerprint" not in found[-1] and len(fields) > 9:
            found[-1]["fingerprint"] = fields[9]
        elif found and fields[0] == "uid" and "user_id" not in found[-1] and len(fields) > 9:
            found[-1]["user_id"] = fields[9]
    return [SecretKey(k["fingerprint"], k["validity"], k["capabilities"], k.get("user_id", "")) for k in found if k.get("fingerprint")]


def choose_key(gpg_key: str, keys: list[SecretKey]) -> SecretKey:
    """The one secret key gpg_key names, able to sign; PackageError otherwise."""
    where = f"signing key {gpg_key!r}"
    if not keys:
        raise PackageError(
            f"{where}: no secret key for it in {gnupg_home()}",
            hint="import it there (`gpg --batch --import private-key.asc`; in CI set GNUPGHOME to where the secret key was imported), "
            "or set packaging.gpg_key in buildcfg.yaml to a key that `gpg --list-secret-keys` shows",
        )
    if len(keys) > 1:
        names = ", ".join(f"{k.fingerprint} ({k.user_id})" if k.user_id else k.fingerprint for k in keys)
        raise PackageError(f"{where} names {len(keys)} secret keys in {gnupg_home()}: {names}", hint="name one by its full fingerprint in packaging.gpg_key")
    key = keys[0]
    if "S" not in key.capabilities:
        why = _UNUSABLE.get(key.validity, "no usable signing (sub)key")
        fix = f"extend it: `gpg --quick-set-expire {key.fingerprint} 1y`, and with `1y '*'` its subkeys" if key.validity == "e" else "add a signing subkey"
        raise PackageError(f"{where}: key {key.fingerprint} cannot sign: {why}", hint=f"{fix}, or name another key in packaging.gpg_key")
    return key


def signing_failure(gpg_key: str, fingerprint: str, output: str) -> PackageError:
    """One line for what gpg printed when signing failed."""
    where = f"signing key {gpg_key!r}"
    if any(marker in output for marker in _PASSPHRASE_MARKERS):
        return PackageError(
            f"{where}: key {fingerprint} has a passphrase and gpg-agent does not hold it (dock32 signs in --batch mode and never prompts)",
            hint=f"unlock it in the agent just before the build (`echo | gpg --clearsign --local-user {fingerprint} >/dev/null`) or preset it "
            "with gpg-preset-passphrase; in CI use a key without a passphrase",
        )
    if re.search(r"INV_SGNR|No secret key|Unusable secret key", output):
        return PackageError(
            f"{where}: gpg cannot use the secret key of {fingerprint} in {gnupg_home()} (missing, expired, or on a card that is not present)",
            hint="check `gpg --list-secret-keys --with-subkey-fingerprints` and import the secret (sub)key",
        )
    lines = [line.removeprefix("gpg: ") for line in output.splitlines() if line.strip() and not line.startswith("[GNUPG:]")]
    last = lines[-1] if lines else "no message"
    return PackageError(f"{where}: gpg failed to sign with {fingerprint}: {last}", hint=f"gpg's output is in the log; keyring: {gnupg_home()}")


def _gpg(argv: Sequence[str | Path], log: Path | None) -> subprocess.CompletedProcess[str]:
    """Run a gpg or gpgv command, its output appended to log."""
    result = capture(argv)
    if log is not None:
        with open_log(log) as out:
            out.write(f"$ {command_line(argv)}\n{result.stdout}{result.stderr}")
    if result.returncode == 127 and result.stderr.startswith("command not found"):
        raise PackageError(f"signing the repository needs {argv[0]}, which is not installed", hint=f"apt-get install {argv[0]}")
    return result


GPG = ("gpg", "--batch", "--no-tty", "--pinentry-mode", "error")


def signing_key(gpg_key: str, log: Path | None = None) -> SecretKey:
    """The secret key packaging.gpg_key names in $GNUPGHOME."""
    result = _gpg([*GPG, "--with-colons", "--list-secret-keys", "--", gpg_key], log)
    # Exit code 2 with "No secret key" when nothing matches: the same as an empty list.
    return choose_key(gpg_key, parse_secret_keys(result.stdout))


def public_keyring(fingerprint: str, log: Path | None = None) -> bytes:
    """The public key as a binary OpenPGP keyring (what apt's signed-by= and gpgv --keyring read)."""
    with tempfile.TemporaryDirectory(prefix="dock32-keyring.") as tmp:
        out = Path(tmp) / KEYRING
        result = _gpg([*GPG, "--export-options", "export-minimal", "--output", out, "--export", fingerprint], log)
        data = out.read_bytes() if out.is_file() else b""
    if result.returncode != 0 or not data:
        raise PackageError(f"gpg could not export the public key {fingerprint}: {result.stderr.strip()[-200:] or 'nothing exported'}")
    return data


def sign_release(folder: Path, gpg_key: str, log: Path | None = None) -> str:
    """Sign folder/Release into folder/InRelease (clearsigned) and folder/Release.gpg (detached, armored) with the key
    packaging.gpg_key names, check both with gpgv against that key alone, as apt does, and return its fingerprint.
    The old signatures are removed first, so that a failure never leaves a signature of another Release."""
    for name in SIGNATURES:
        (folder / name).unlink(missing_ok=True)
    key = signing_key(gpg_key, log)
    release = folder / "Release"
    with tempfile.TemporaryDirectory(prefix="dock32-sign.") as tmp:
        made = Path(tmp)
        for name, how in (("InRelease", "--clearsign"), ("Release.gpg", "--detach-sign")):
            result = _gpg([*GPG, "--status-fd", "1", "--yes", "--local-user", key.fingerprint, "--armor", how, "--output", made / name, "--", release], log)
            if result.returncode != 0 or not (made / name).is_file():
                raise signing_failure(gpg_key, key.fingerprint, result.stdout + result.stderr)
        keyring = made / KEYRING
        keyring.write_bytes(public_keyring(key.fingerprint, log))
        for check in ([made / "InRelease"], [made / "Release.gpg", release]):
            result = _gpg(["gpgv", "--status-fd", "1", "--keyring", keyring, "--", *check], log)
            signer = re.search(r"^\[GNUPG:\] VALIDSIG (?:\S+ ){9}(\S+)$", result.stdout, re.MULTILINE)
            if result.returncode != 0 or signer is None or signer.group(1) != key.fingerprint:
                raise PackageError(f"{check[0].name}, signed with {key.fingerprint}, does not verify with that key's export", hint="gpgv's output: see the log")
        for name in SIGNATURES:
            atomic.write_bytes(folder / name, (made / name).read_bytes())
    return key.fingerprint
