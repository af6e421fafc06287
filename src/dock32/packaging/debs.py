"""The .debs and their apt repository: staged trees, dpkg-deb, xz, and python-debian for control and index files."""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import io
import json
import shutil
import sys
import tempfile
from pathlib import Path

from debian.deb822 import Deb822

from dock32.core import atomic, diskspace, modes
from dock32.core.errors import PackageError
from dock32.core.run import capture, run
from dock32.model.config import Built, Component, DebPackage, GoModuleSource, Packaging
from dock32.model.layout import Layout
from dock32.model.settings import Settings
from dock32.model.stages import PackageInput, RepositoryInput
from dock32.packaging.signing import KEYRING, SIGNATURES, public_keyring
from dock32.packaging.signing import sign_release as sign_release  # dock32 publish signs with it too

# xz for the data member: the x86 branch filter and a 64 MiB window pack the
# Go binaries smaller than `xz -6` at about a quarter of its CPU time. Measured
# on the six packages of 29.8.1 (2026-11-30; compressing each data.tar, one
# thread): xz -6 156 s, 82.95 MB; preset=2 65.7 s, 0.946 of it; preset=1
# (fewer match candidates: nice=128, depth=8) 43.0 s, 0.960; preset=0 28.1 s,
# 1.012. Every dpkg with xz support reads it (liblzma decodes any filter
# chain); unpacking needs about 65 MiB of memory. One thread per package keeps
# the output independent of the machine's core count.
XZ_DATA_FILTERS = ("--x86", "--lzma2=preset=1,dict=64MiB")
ZSTD_WARNING = "packages compressed with zstd need dpkg >= 1.21.18 (Debian 12, Ubuntu 21.10); older 32-bit systems cannot install them"


def placeholder_values(config: Built, packaging: Packaging) -> dict[str, str]:
    """What {<component>} and {distro_suffix} stand for in packages.yaml's versions and relations."""
    values = {c.name: c.version.removeprefix("v") for c in config.components}
    values["distro_suffix"] = packaging.distro.version_suffix(packaging.revision) + config.flavour.version_suffix
    return values


def package_version(package: DebPackage, config: Built, packaging: Packaging) -> str:
    return package.version.format(**placeholder_values(config, packaging))


def deb_filename(package: DebPackage, version: str, arch: str) -> str:
    return f"{package.name}_{version.split(':', 1)[-1]}_{arch}.deb"


def sbom_filename(package: DebPackage, version: str, arch: str) -> str:
    """The package's SPDX document beside it: docker-ce_28.5.2-1~debian.12~bookworm_i386.spdx.json (sbom.py)."""
    return deb_filename(package, version, arch).removesuffix(".deb") + ".spdx.json"


def _relations(package: DebPackage, config: Built, packaging: Packaging) -> dict[str, str]:
    values = placeholder_values(config, packaging)
    fields = {
        "Pre-Depends": package.pre_depends,
        "Depends": package.depends,
        "Recommends": package.recommends,
        "Suggests": package.suggests,
        "Conflicts": package.conflicts,
        "Breaks": package.breaks,
        "Replaces": package.replaces,
        "Provides": package.provides,
        "Enhances": package.enhances,
    }
    return {key: ", ".join(item.format(**values) for item in items) for key, items in fields.items() if items}


def installed_size_kib(root: Path) -> int:
    """As dpkg-gencontrol counts it: each file's size rounded up to KiB, and one KiB per other entry."""
    total = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            total += (path.stat().st_size + 1023) // 1024
        else:
            total += 1
    return total


def gzip_reproducibly(data: bytes, epoch: int) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=epoch) as out:
        out.write(data)
    return buffer.getvalue()


def _copyright(package: DebPackage, config: Built, layout: Layout) -> str:
    component = config.component(package.license_from)
    source = component.source
    upstream = source.ref if isinstance(source, GoModuleSource) else source.urls[0]
    stanzas = [
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n"
        f"Upstream-Name: {package.license_from}\nSource: {upstream}\n",
        f"Files: *\nCopyright: {package.copyright}\nLicense: Apache-2.0\n",
    ]
    # docker-init is tini, under the MIT (Expat) licence: its text goes in whole.
    if any(f.binary == "docker-init" for f in package.files):
        text = (layout.source_tree("tini") / "LICENSE").read_text(encoding="utf-8")
        body = "\n".join(f" {line}" if line.strip() else " ." for line in text.strip().splitlines())
        stanzas.append(f"Files: usr/libexec/docker/docker-init\nCopyright: Thomas Orozco and the tini authors\nLicense: Expat\n{body}\n")
    stanzas.append(
        "License: Apache-2.0\n On Debian systems, the complete text of the Apache License, Version 2.0\n"
        " can be found in /usr/share/common-licenses/Apache-2.0.\n"
    )
    return "\n".join(stanzas)


def _changelog(package: DebPackage, version: str, config: Built, packaging: Packaging) -> str:
    """One entry: the Docker release and, since a plugin's or containerd.io's version is not Docker's, the upstream
    versions of what the package carries."""
    date = email.utils.format_datetime(config.release.date)
    upstream = ", ".join(f"{c.name} {c.version.removeprefix('v')}" for c in packaged_components(package, config))
    return (
        f"{package.source} ({version}) {packaging.distro.codename}; urgency=medium\n\n"
        f"  * Docker {config.release.version} built for {config.flavour.deb_arch.names.debian} by dock32{config.flavour.programs_note}.\n"
        f"  * Upstream: {upstream}.\n\n"
        f" -- {packaging.maintainer}  {date}\n"
    )


def packaged_components(package: DebPackage, config: Built) -> list[Component]:
    """The components whose binaries the package carries, in the config's order (containerd.io: containerd, runc)."""
    binaries = {f.binary for f in package.files if f.binary} | {f.run[0] for f in package.files if f.run}
    return [c for c in config.components if any(b.name in binaries for b in c.binaries)]


def stage_package(package: DebPackage, config: Built, packaging: Packaging, layout: Layout, root: Path) -> str:
    """Lay out the package's files and DEBIAN/ under root; returns its version."""
    version = package_version(package, config, packaging)
    conffiles = []
    # Each file's mode as packages.yaml gives it (0644 or 0755, load_packages allows no other); the rest are 0644.
    declared: dict[Path, int] = {}
    for entry in package.files:
        destination = root / entry.to.replace("{unitdir}", packaging.distro.unitdir).lstrip("/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        declared[destination] = entry.mode
        if entry.binary:
            shutil.copyfile(layout.binary(entry.binary), destination)
        elif entry.source:
            component, inner = entry.source
            text = (layout.source_tree(component) / inner).read_text(encoding="utf-8")
            for old, new in entry.replace:
                if old not in text:
                    raise PackageError(f"{package.name}: {inner} no longer contains {old!r}", hint="update the replace: rule in packaging/packages.yaml")
                text = text.replace(old, new)
            destination.write_text(text, encoding="utf-8")
        elif entry.file:
            shutil.copyfile(layout.project_dir / "packaging" / "files" / entry.file, destination)
        elif entry.run:
            result = capture([layout.binary(entry.run[0]), *entry.run[1:]], env={"HOME": str(root.parent)})
            if result.returncode != 0:
                raise PackageError(f"{package.name}: `{' '.join(entry.run)}` failed with exit code {result.returncode}: {result.stderr.strip()[-300:]}")
            if not result.stdout:
                raise PackageError(f"{package.name}: `{' '.join(entry.run)}` printed nothing", hint=f"{entry.to} would be empty")
            destination.write_text(result.stdout, encoding="utf-8")
        if entry.conffile:
            conffiles.append("/" + destination.relative_to(root).as_posix())

    doc = root / "usr" / "share" / "doc" / package.name
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "copyright").write_text(_copyright(package, config, layout), encoding="utf-8")
    (doc / "changelog.Debian.gz").write_bytes(gzip_reproducibly(_changelog(package, version, config, packaging).encode(), config.release.epoch))
    overrides = layout.project_dir / "packaging" / "lintian" / package.name
    override_text = overrides.read_text(encoding="utf-8") if overrides.is_file() else ""
    override_text += config.flavour.lintian_overrides
    if override_text:
        target = root / "usr" / "share" / "lintian" / "overrides" / package.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(override_text, encoding="utf-8")

    control_dir = root / "DEBIAN"
    control_dir.mkdir()
    control = Deb822()
    control["Package"] = package.name
    if package.source != package.name:
        control["Source"] = package.source
    control["Version"] = version
    control["Architecture"] = config.flavour.deb_arch.names.debian
    control["Maintainer"] = packaging.maintainer
    control["Installed-Size"] = str(installed_size_kib(root))
    control.update(_relations(package, config, packaging))
    control["Section"] = package.section
    control["Priority"] = "optional"
    control["Homepage"] = "https://www.docker.com"
    summary, _, body = package.description.partition("\n")
    control["Description"] = summary + "".join(f"\n {line}" if line.strip() else "\n ." for line in body.splitlines())
    (control_dir / "control").write_text(control.dump(), encoding="utf-8")
    md5sums = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and control_dir not in p.parents):
        rel = path.relative_to(root).as_posix()
        if "/" + rel not in conffiles:
            md5sums.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {rel}\n")
    (control_dir / "md5sums").write_text("".join(md5sums), encoding="utf-8")
    if conffiles:
        (control_dir / "conffiles").write_text("".join(f"{c}\n" for c in sorted(conffiles)), encoding="utf-8")
    scripts = {script: layout.project_dir / "packaging" / "scripts" / package.name / script for script in package.scripts}
    if config.flavour.preinst:
        if "preinst" in scripts:
            raise PackageError(
                f"{package.name}: has a preinst of its own, and {config.flavour.strategy} packages get {config.flavour.preinst}", hint="merge the two into one"
            )
        scripts["preinst"] = layout.project_dir / "packaging" / config.flavour.preinst
    for script, source in scripts.items():
        shutil.copyfile(source, control_dir / script)
        declared[control_dir / script] = modes.PROGRAM
    # Every mode set here, none left to the umask: what the files and folders were made with is the umask's
    # (0750 folders under 0027, which dpkg-deb refuses for DEBIAN/), and dpkg-deb packs the modes it finds.
    modes.set_tree(root, declared)
    return version


def build_deb(package: DebPackage, config: Built, packaging: Packaging, layout: Layout, xz_filters: tuple[str, ...] = XZ_DATA_FILTERS) -> None:
    """Stage, pack with dpkg-deb, and for xz recompress the data member; the .deb appears only when complete."""
    dist = layout.dist_dir
    modes.make_dirs(dist)
    diskspace.require(layout.target_dir, diskspace.PACKAGE_NEED, f"packing {package.name}")
    work = Path(tempfile.mkdtemp(prefix=f"{package.name}.", suffix=".partial", dir=layout.target_dir))
    log = layout.log(f"package-{package.name}")
    log.unlink(missing_ok=True)
    try:
        root = work / "root"
        root.mkdir()
        version = stage_package(package, config, packaging, layout, root)
        final = dist / deb_filename(package, version, config.flavour.deb_arch.names.debian)
        partial = work / final.name
        env = {"SOURCE_DATE_EPOCH": str(config.release.epoch)}
        if packaging.compression == "zstd":
            print(f"warning: {ZSTD_WARNING}", file=sys.stderr)
            run(["dpkg-deb", "--root-owner-group", "-Zzstd", "--build", root, partial], env=env, log=log, what=f"pack {package.name}")
        else:
            # dpkg-deb makes the sorted, clamped, root-owned tars; only the compression is ours (see XZ_DATA_FILTERS).
            plain = work / "plain.deb"
            run(["dpkg-deb", "--root-owner-group", "-Znone", "--build", root, plain], env=env, log=log, what=f"pack {package.name}")
            members = work / "members"
            members.mkdir()
            run(["ar", "x", plain], cwd=members, log=log, what=f"unpack {package.name}")
            run(["xz", "-T1", "-6", "--", members / "control.tar"], log=log, what=f"compress {package.name}")
            run(["xz", "-T1", *xz_filters, "--", members / "data.tar"], log=log, what=f"compress {package.name}")
            run(["ar", "rcD", partial, "debian-binary", "control.tar.xz", "data.tar.xz"], cwd=members, log=log, what=f"pack {package.name}")
        _publish(partial, final)
        for stale in dist.glob(f"{package.name}_*.deb"):
            if stale != final:
                stale.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _publish(built: Path, final: Path) -> None:
    """Copy to a hidden name beside final (its own file system, so the rename is atomic), then rename."""
    staged = final.with_name(f".{final.name}.partial")
    try:
        modes.copy_file(built, staged)
        staged.replace(final)
    finally:
        staged.unlink(missing_ok=True)


def file_hashes(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    return {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest(), "size": str(len(data))}


def package_stanza(deb: Path, filename: str, hashes: dict[str, str]) -> str:
    """deb's control stanza as a Packages index lists it: where the file is, its size and hashes."""
    from debian.debfile import DebFile

    control = Deb822(DebFile(str(deb)).control.get_content("control", encoding="utf-8"))
    control["Filename"] = filename
    control["Size"], control["MD5sum"], control["SHA256"] = hashes["size"], hashes["md5"], hashes["sha256"]
    return str(control.dump())


def write_indexes(folder: Path, stanzas: list[str], epoch: int) -> list[Path]:
    """folder/Packages and folder/Packages.gz from the stanzas; returns both."""
    index = "\n".join(stanzas).encode()
    atomic.write_bytes(folder / "Packages", index)
    atomic.write_bytes(folder / "Packages.gz", gzip_reproducibly(index, epoch))
    return [folder / "Packages", folder / "Packages.gz"]


def write_release(folder: Path, fields: dict[str, str], indexes: list[Path]) -> None:
    """folder/Release: the fields, then the MD5Sum and SHA256 lists of the indexes (named relative to folder)."""
    release = Deb822(fields)
    hashes = {index.relative_to(folder).as_posix(): file_hashes(index) for index in indexes}
    release["MD5Sum"] = "".join(f"\n {h['md5']} {h['size']:>10} {name}" for name, h in hashes.items())
    release["SHA256"] = "".join(f"\n {h['sha256']} {h['size']:>10} {name}" for name, h in hashes.items())
    atomic.write_text(folder / "Release", release.dump())


def write_repository(packages: tuple[DebPackage, ...], config: Built, packaging: Packaging, layout: Layout) -> None:
    """A flat apt repository in dist/<target>/: Packages, Packages.gz, Release, SHA256SUMS; with packaging.gpg_key,
    InRelease, Release.gpg and the key's public keyring (signing.KEYRING) too."""

    dist = layout.dist_dir
    arch = config.flavour.deb_arch.names.debian
    debs = [dist / deb_filename(p, package_version(p, config, packaging), arch) for p in packages]
    # Each .deb is read once: Packages, the manifest and SHA256SUMS share these.
    hashed = {deb.name: file_hashes(deb) for deb in debs}
    stanzas = [package_stanza(deb, f"./{deb.name}", hashed[deb.name]) for deb in sorted(debs)]
    indexes = write_indexes(dist, stanzas, config.release.epoch)
    fields = {
        "Origin": "dock32", "Label": "dock32", "Suite": packaging.distro.codename, "Codename": packaging.distro.codename,
        "Date": email.utils.format_datetime(config.release.date, usegmt=True), "Architectures": arch,
        "Description": f"Docker {config.release.version} for {arch} ({layout.target}), built by dock32",
    }
    write_release(dist, fields, indexes)
    for name in (*SIGNATURES, KEYRING):
        (dist / name).unlink(missing_ok=True)
    if packaging.gpg_key:
        # InRelease and Release.gpg, and beside them the public key that verifies them, for `signed-by=`.
        log = layout.log("repository")
        fingerprint = sign_release(dist, packaging.gpg_key, log)
        atomic.write_bytes(dist / KEYRING, public_keyring(fingerprint, log))

    manifest = json.loads(layout.manifest.read_text(encoding="utf-8"))
    manifest["packages"] = {}
    for p, deb in zip(packages, debs, strict=True):
        version = package_version(p, config, packaging)
        manifest["packages"][p.name] = {"version": version, "file": deb.name, **hashed[deb.name]}
        # The build's sbom task writes it before this; a repack without one (verify's upgrade) lists none.
        sbom = dist / sbom_filename(p, version, arch)
        if sbom.is_file():
            manifest["packages"][p.name].update(sbom=sbom.name, sbom_sha256=file_hashes(sbom)["sha256"])
    manifest["distro"] = packaging.distro_name
    manifest["compression"] = packaging.compression
    atomic.write_text(dist / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    listed = sorted(p.name for p in dist.iterdir() if p.is_file() and p.name != "SHA256SUMS")
    digests = {n: hashed[n]["sha256"] if n in hashed else file_hashes(dist / n)["sha256"] for n in listed}
    atomic.write_text(dist / "SHA256SUMS", "".join(f"{digests[n]}  {n}\n" for n in listed))


def pack(inputs: PackageInput, settings: Settings) -> None:
    """The package task: one .deb, from its stage input alone."""
    build_deb(inputs.package, inputs, inputs.packaging, inputs.layout, inputs.xz_filters)


def index(inputs: RepositoryInput, settings: Settings) -> None:
    """The repository task: the apt index, checksums and manifest of the target's packages, from its stage input alone."""
    write_repository(inputs.packages, inputs, inputs.packaging, inputs.layout)
