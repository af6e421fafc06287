"""`dock32 publish`: merge the flat repositories of several targets (CI artifacts) into one apt repository.

Layout, as Debian's archive has it: pool/<component>/<first letter>/<package>/<file>.deb (with its SPDX SBOM beside
it), and per distribution dists/<codename>/<component>/binary-<arch>/Packages(.gz) and dists/<codename>/Release,
signed into InRelease and Release.gpg when a key is given (the public keyring goes to the top). Each target's
manifest.json says which distribution its packages are for, and which flavour they are: each flavour is a component
of its own (main: native32 with SSE2; softfloat; multiarch64). The flavours ship the same package names, so in one
component apt would move a machine from one to another on upgrade (native32 to +multiarch64, a higher version, even
where the kernel cannot run it); a component per flavour lets the user's sources line choose, as Debian's
main/contrib/non-free does.
"""

from __future__ import annotations

import email.utils
import json
import shutil
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dock32.core import atomic, modes
from dock32.core.errors import PackageError
from dock32.model.config import DISTROS
from dock32.model.flavour import Flavour, FlavourError
from dock32.packaging import signing
from dock32.packaging.debs import file_hashes, package_stanza, write_indexes, write_release


@dataclass(frozen=True)
class TargetRepo:
    folder: Path
    distro: str  # a DISTROS key, from the target's manifest.json
    component: str  # the apt component of the target's flavour
    debs: tuple[Path, ...]
    sboms: dict[str, Path]  # .deb file name -> its SPDX document, published beside it in the pool


def read_target(folder: Path) -> TargetRepo:
    manifest_path = folder / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PackageError(f"{folder}: not a dock32 repository ({manifest_path.name}: {exc})", hint="pass the dist/<target> folders of builds") from None
    distro = manifest.get("distro")
    if distro not in DISTROS:
        raise PackageError(f"{manifest_path}: unknown distro {distro!r}", hint=f"one of {', '.join(DISTROS)}")
    entries = manifest.get("packages", {}).values()
    debs = tuple(sorted(folder / entry["file"] for entry in entries))
    sboms = {entry["file"]: folder / entry["sbom"] for entry in entries if entry.get("sbom")}
    missing = [p.name for p in (*debs, *sboms.values()) if not p.is_file()]
    if not debs or missing:
        raise PackageError(f"{folder}: the manifest names files that are not there: {', '.join(missing) or 'no packages listed'}")
    try:
        flavour = Flavour.from_record(manifest)
    except FlavourError as exc:
        raise PackageError(f"{manifest_path}: {exc}", hint="pass the dist/<target> folders of dock32 builds") from None
    return TargetRepo(folder, distro, flavour.apt_component, debs, sboms)


def merge(targets: list[Path], out: Path, date: datetime | None = None, gpg_key: str | None = None) -> list[Path]:
    """Write the merged repository into out (which must not exist yet: a publish never mixes with an old one).
    Returns the Release files written."""
    from debian.debfile import DebFile

    if out.exists():
        raise PackageError(f"{out} exists", hint="publish into a new folder")
    repos = [read_target(folder) for folder in targets]
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    # distro -> (component, arch) -> stanzas
    by_distro: dict[str, dict[tuple[str, str], list[str]]] = defaultdict(lambda: defaultdict(list))
    placed: dict[str, str] = {}
    for repo in repos:
        for deb in repo.debs:
            control = DebFile(str(deb)).debcontrol()
            name, arch = control["Package"], control["Architecture"]
            pool = Path("pool") / repo.component / name[0] / name / deb.name
            digest = file_hashes(deb)
            if deb.name in placed and placed[deb.name] != digest["sha256"]:
                raise PackageError(f"{deb.name}: two targets ship different files under this name ({placed[deb.name][:12]}, {digest['sha256'][:12]})")
            if deb.name not in placed:
                # 0644 and 0755 whatever the umask, and whatever modes the targets' folders came with: a web server
                # or apt's unprivileged download user reads the repository.
                modes.make_dirs((staging / pool).parent)
                modes.copy_file(deb, staging / pool)
                if deb.name in repo.sboms:
                    modes.copy_file(repo.sboms[deb.name], (staging / pool).parent / repo.sboms[deb.name].name)
                placed[deb.name] = digest["sha256"]
            stanza = package_stanza(deb, pool.as_posix(), digest)
            if stanza not in by_distro[repo.distro][repo.component, arch]:
                by_distro[repo.distro][repo.component, arch].append(stanza)
    when = date or datetime.now(UTC)
    releases = []
    for distro_name, indexed in sorted(by_distro.items()):
        distro = DISTROS[distro_name]
        dist = staging / "dists" / distro.codename
        indexes = []
        for (component, arch), stanzas in sorted(indexed.items()):
            indexes += write_indexes(dist / component / f"binary-{arch}", sorted(stanzas), int(when.timestamp()))
        fields = {
            "Origin": "dock32", "Label": "dock32", "Suite": distro.codename, "Codename": distro.codename,
            "Date": email.utils.format_datetime(when.astimezone(UTC), usegmt=True),
            "Architectures": " ".join(sorted({arch for _, arch in indexed})),
            "Components": " ".join(sorted({component for component, _ in indexed})),
            "Description": f"Docker for 32-bit x86 ({distro.codename}), built by dock32",
        }
        write_release(dist, fields, indexes)
        if gpg_key:
            fingerprint = signing.sign_release(dist, gpg_key)
            # The key users name in `deb [signed-by=...]`, at the repository's top.
            atomic.write_bytes(staging / signing.KEYRING, signing.public_keyring(fingerprint))
        releases.append(out / "dists" / distro.codename / "Release")
    staging.rename(out)
    return releases
