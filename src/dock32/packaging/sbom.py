"""SPDX 2.3 SBOMs: one JSON document per .deb naming what went into it (Go modules, Go toolchain, C sources and
libraries, our patches) from the build manifest, written beside the .deb in dist/<target>/."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from dock32 import __version__
from dock32.core import atomic
from dock32.core.errors import PackageError
from dock32.model.config import Built, DebPackage, Packaging
from dock32.model.layout import Layout
from dock32.model.settings import Settings
from dock32.model.stages import SbomInput
from dock32.packaging.debs import deb_filename, package_version, sbom_filename

NAMESPACE_BASE = "https://dock32.invalid/spdx"
NOASSERTION = "NOASSERTION"
# Raise when the documents' content changes for the same inputs: doit then writes them again.
SBOM_FORMAT = 1
TOOL_VERSION = __version__


@dataclass(frozen=True)
class PackedDeb:
    """The .deb a document describes."""

    package: DebPackage
    version: str  # with the epoch: 5:28.5.2-1~debian.12~bookworm
    arch: str
    filename: str
    sha256: str


def _purl_version(version: str) -> str:
    return quote(version, safe="")


def go_purl(module: str, version: str) -> str:
    """pkg:golang/<module path>@<version>, as Go SBOM tools write it: the path's slashes kept, the version's + and : encoded."""
    return f"pkg:golang/{quote(module, safe='/')}@{_purl_version(version)}"


def _purl_ref(locator: str) -> dict[str, str]:
    return {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": locator}


def _sha256(value: str) -> dict[str, str]:
    return {"algorithm": "SHA256", "checksumValue": value}


class _Ids:
    """SPDX identifiers allow only letters, digits, "." and "-": other characters become "-", and a name that
    would collide with one already given gets a hash of its key appended, so every element keeps its own id."""

    def __init__(self) -> None:
        self._given: dict[tuple[str, str], str] = {}

    def __call__(self, kind: str, key: str) -> str:
        if (kind, key) not in self._given:
            candidate = f"SPDXRef-{kind}-" + re.sub(r"[^A-Za-z0-9.]+", "-", key).strip("-")
            if candidate in self._given.values():
                candidate += "-" + hashlib.sha256(key.encode()).hexdigest()[:12]
            self._given[(kind, key)] = candidate
        return self._given[(kind, key)]


def _package(spdx_id: str, name: str, version: str | None, **fields: Any) -> dict[str, Any]:
    """An SPDX package whose files are not listed; licences are not asserted (the .debs' copyright files say them)."""
    entry: dict[str, Any] = {
        "SPDXID": spdx_id,
        "name": name,
        "downloadLocation": NOASSERTION,
        "filesAnalyzed": False,
        "licenseConcluded": NOASSERTION,
        "licenseDeclared": NOASSERTION,
        "copyrightText": NOASSERTION,
    }
    if version is not None:
        entry["versionInfo"] = version
    entry.update({k: v for k, v in fields.items() if v is not None})
    return entry


def _supplier(maintainer: str) -> str:
    """"Name <email>" as an SPDX supplier, "Organization: Name (email)"."""
    match = re.fullmatch(r"\s*([^<>]+?)\s*<([^<>]+)>\s*", maintainer)
    return f"Organization: {match.group(1)} ({match.group(2)})" if match else f"Organization: {maintainer}"


def _c_library(spdx_id: str, library: Mapping[str, str], note: str) -> dict[str, Any]:
    """A C library as the build machine's Debian package it came from (manifest: toolchain.c_library_record)."""
    if "deb_package" not in library:
        return _package(spdx_id, library["name"], library.get("version"), primaryPackagePurpose="LIBRARY", comment=note)
    name, version = library["deb_package"], library["deb_version"]
    purl = f"pkg:deb/{library.get('deb_vendor', 'debian')}/{quote(name, safe='')}@{_purl_version(version)}"
    if library.get("deb_arch"):
        purl += f"?arch={library['deb_arch']}"
    note += f"; from the build machine's Debian package {name} {version}"
    return _package(spdx_id, name, version, primaryPackagePurpose="LIBRARY", externalRefs=[_purl_ref(purl)], comment=note)


def _is_local(path: str) -> bool:
    return path.startswith((".", "/"))


@dataclass
class _GoModule:
    users: set[str]
    sum: str | None
    replaced: Mapping[str, str] | None


def _go_modules(info: Mapping[str, Any]) -> dict[tuple[str, str], _GoModule]:
    """(module, version) -> what `go version -m` says of it; a module replaced by another module adds that one,
    which is what was linked."""
    found = {}
    sums = info.get("sums") or {}
    replace = info.get("replace") or {}
    for dep in info.get("deps", []):
        module, _, version = dep.partition(" ")
        replaced = replace.get(module)
        found[(module, version)] = _GoModule(set(), sums.get(module), replaced)
        if replaced and replaced.get("version") and not _is_local(replaced["path"]):
            found[(replaced["path"], replaced["version"])] = _GoModule(set(), replaced.get("sum"), None)
    return found


def build_sbom(
    deb: PackedDeb,
    packaging: Packaging,
    manifest: Mapping[str, Any],
    patch_sha1: Mapping[str, str],
    created: datetime,
    tool_version: str = TOOL_VERSION,
) -> dict[str, Any]:
    """The SPDX 2.3 document of one .deb, from the build manifest (build/<target>/manifest.json).

    patch_sha1 maps each applied patch's sha256 to its SHA-1, which SPDX requires of every file. Nothing here reads
    a file or the clock: the same inputs give the same document.
    """
    package = deb.package
    ids = _Ids()
    deb_id = ids("Package", package.name)
    distro = packaging.distro
    toolchain = manifest["toolchain"]
    packages: list[dict[str, Any]] = [
        _package(
            deb_id,
            package.name,
            deb.version,
            packageFileName=deb.filename,
            checksums=[_sha256(deb.sha256)],
            supplier=_supplier(packaging.maintainer),
            primaryPackagePurpose="INSTALL",
            summary=package.description.partition("\n")[0],
            comment=f"Docker {manifest['release']} for {deb.arch} ({manifest['target']}), built by dock32",
            externalRefs=[
                _purl_ref(
                    f"pkg:deb/{distro.vendor}/{quote(package.name, safe='')}@{_purl_version(deb.version)}"
                    f"?arch={deb.arch}&distro={distro.vendor}-{distro.version_id}"
                )
            ],
        )
    ]
    files: list[dict[str, Any]] = []
    relationships: list[tuple[str, str, str]] = [("SPDXRef-DOCUMENT", "DESCRIBES", deb_id)]
    modules: dict[tuple[str, str], _GoModule] = {}  # shared by the package's binaries
    by_component: dict[str, list[str]] = {}  # component -> its binaries' ids
    go_binaries: list[str] = []
    c_binaries: list[str] = []  # compiled with the C compiler: tini, and cgo binaries

    for entry in package.files:
        if not entry.binary:
            continue
        if entry.binary not in manifest["binaries"]:
            raise PackageError(f"{package.name}: build/<target>/manifest.json has no binary {entry.binary}", hint="run `doit manifest` again")
        built = manifest["binaries"][entry.binary]
        binary_id = ids("Binary", entry.binary)
        info = built.get("go_version_m") or {}
        settings = info.get("settings") or {}
        if info:
            flags = " ".join(f"{k}={v}" for k, v in sorted(settings.items()))
            comment = f"Go binary, compiled by {info.get('go')}: path {info.get('path')}; mod {info.get('mod')}; build {flags}"
        else:
            comment = f"C binary, compiled by {built.get('cc') or toolchain.get('cc')}"
        packages.append(
            _package(
                binary_id,
                entry.binary,
                built["version"],
                packageFileName=entry.to.replace("{unitdir}", distro.unitdir).lstrip("/"),
                checksums=[_sha256(built["sha256"])],
                primaryPackagePurpose="APPLICATION",
                comment=comment,
            )
        )
        # The .deb is not file-analysed (its units, completions and docs are not listed), and SPDX lets such a
        # package contain only packages: so each binary is a package, not a file.
        relationships.append((deb_id, "CONTAINS", binary_id))
        by_component.setdefault(built["component"], []).append(binary_id)
        if info:
            go_binaries.append(binary_id)
            for key, linked in _go_modules(info).items():
                modules.setdefault(key, linked).users.add(binary_id)
        if not info or settings.get("CGO_ENABLED") == "1":
            c_binaries.append(binary_id)

    for component, users in sorted(by_component.items()):
        described = manifest["components"][component]
        source_id = ids("Source", component)
        source = described["source"]
        if isinstance(source, str):  # a Go module, "path@version"
            module, _, version = source.partition("@")
            packages.append(
                _package(
                    source_id,
                    module,
                    version,
                    primaryPackagePurpose="SOURCE",
                    externalRefs=[_purl_ref(go_purl(module, version))],
                    comment=f"dock32 component {component} (commit {described['commit']}): the module {described['source_hash']}, as pinned in buildcfg.yaml",
                )
            )
        else:  # a tarball, pinned by the hash of its unpacked tree
            urls = [u for u in source if "{" not in u]
            purl = f"pkg:generic/{quote(component, safe='')}@{_purl_version(described['version'])}"
            packages.append(
                _package(
                    source_id,
                    component,
                    described["version"],
                    downloadLocation=urls[0] if urls else NOASSERTION,
                    primaryPackagePurpose="SOURCE",
                    externalRefs=[_purl_ref(purl + (f"?download_url={quote(urls[0], safe='')}" if urls else ""))],
                    comment=f"dock32 component {component} (commit {described['commit']}): the unpacked tree {described['source_hash']}"
                    " (dock32's tree hash, which the archive from any mirror must match), as pinned in buildcfg.yaml",
                )
            )
        relationships += [(binary_id, "GENERATED_FROM", source_id) for binary_id in users]
        for patch in described.get("patches", []):
            patch_id = ids("Patch", f"{component}-{patch['name']}")
            if patch["sha256"] not in patch_sha1:
                raise PackageError(f"{package.name}: no SHA-1 for patches/{component}/{patch['name']}")
            files.append(
                {
                    "SPDXID": patch_id,
                    "fileName": f"./patches/{component}/{patch['name']}",
                    "checksums": [{"algorithm": "SHA1", "checksumValue": patch_sha1[patch["sha256"]]}, _sha256(patch["sha256"])],
                    "fileTypes": ["SOURCE"],
                    "licenseConcluded": NOASSERTION,
                    "licenseInfoInFiles": [NOASSERTION],
                    "copyrightText": NOASSERTION,
                    "comment": f"dock32's patch, applied to {component} {described['version']} in the order of patches/{component}/series",
                }
            )
            relationships.append((patch_id, "PATCH_APPLIED", source_id))
        for library in described.get("c_libraries", []):
            library_id = ids("CLibrary", library["name"])
            note = f"C library {library['name']} {library.get('version', '')}".strip() + ", linked statically through cgo"
            packages.append(_c_library(library_id, library, note))
            relationships += [(binary_id, "STATIC_LINK", library_id) for binary_id in users if binary_id in c_binaries]

    if go_binaries:
        go_version = toolchain["go"]
        std_id = ids("GoStd", go_version)
        packages.append(
            _package(
                std_id,
                "std",
                go_version,
                primaryPackagePurpose="LIBRARY",
                # Tools disagree on the standard library's purl: cyclonedx-gomod writes std, syft and trivy stdlib
                # (without the "go"). Both are given, so that either kind of scanner finds it.
                externalRefs=[_purl_ref(go_purl("std", go_version)), _purl_ref(go_purl("stdlib", go_version.removeprefix("go")))],
                comment="the Go standard library and runtime, linked into every Go binary",
            )
        )
        go_source = str(toolchain.get("go_source") or "")
        tool_id = ids("GoToolchain", go_version)
        if go_source.startswith("module "):
            module, _, version = go_source.removeprefix("module ").partition("@")
            purl = go_purl(module, version)
        else:
            module, version, purl = "go", go_version, f"pkg:generic/go@{_purl_version(go_version)}"
        note = f"the Go toolchain that compiled the binaries ({go_source or 'origin not recorded'}; buildcfg.yaml pins {toolchain.get('go_pinned')})"
        packages.append(_package(tool_id, module, version, primaryPackagePurpose="APPLICATION", externalRefs=[_purl_ref(purl)], comment=note))
        for binary_id in go_binaries:
            relationships += [(binary_id, "STATIC_LINK", std_id), (tool_id, "BUILD_TOOL_OF", binary_id)]

    if c_binaries and toolchain.get("cc"):
        cc_name, _, cc_version = str(toolchain["cc"]).partition(" ")
        cc_id = ids("CCompiler", cc_name)
        packages.append(_package(cc_id, cc_name, cc_version or None, primaryPackagePurpose="APPLICATION", comment=f"the C compiler: {toolchain['cc']}"))
        relationships += [(cc_id, "BUILD_TOOL_OF", binary_id) for binary_id in c_binaries]
    if c_binaries and toolchain.get("libc"):
        # The C parts are linked statically (tini-static; runc with -extldflags -static), libc included.
        libc_id = ids("CLibrary", "libc")
        packages.append(_c_library(libc_id, toolchain["libc"], "the C library, linked statically into the binaries built with the C compiler"))
        relationships += [(binary_id, "STATIC_LINK", libc_id) for binary_id in c_binaries]

    for (module, version), found in sorted(modules.items()):
        module_id = ids("GoModule", f"{module}@{version}")
        notes = [f"go.sum {found.sum}"] if found.sum else []
        if found.replaced:
            target = " ".join(v for v in (found.replaced["path"], found.replaced.get("version")) if v)
            local = _is_local(found.replaced["path"])
            notes.append(f"replaced in the build by {target}" + (", a copy in the component's tree that dock32's patches change" if local else ""))
        refs = [_purl_ref(go_purl(module, version))]
        packages.append(_package(module_id, module, version, primaryPackagePurpose="LIBRARY", externalRefs=refs, comment="; ".join(notes) or None))
        relationships += [(binary_id, "STATIC_LINK", module_id) for binary_id in sorted(found.users)]

    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": deb.filename.removesuffix(".deb"),
        "documentNamespace": f"{NAMESPACE_BASE}/{quote(package.name, safe='')}-{_purl_version(deb.version)}-{deb.sha256}",
        "creationInfo": {
            # The release's date, never the clock: the same build gives the same document.
            "created": created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "creators": [f"Tool: dock32-{tool_version}"],
        },
        "packages": packages,
        "files": files,
        "relationships": [{"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b} for a, kind, b in dict.fromkeys(relationships)],
    }


def render(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write_sbom(package: DebPackage, config: Built, packaging: Packaging, layout: Layout) -> None:
    """dist/<target>/<package>_<version>_<arch>.spdx.json, from the .deb and build/<target>/manifest.json."""
    dist = layout.dist_dir
    arch = config.flavour.deb_arch.names.debian
    version = package_version(package, config, packaging)
    deb_path = dist / deb_filename(package, version, arch)
    manifest = json.loads(layout.manifest.read_text(encoding="utf-8"))
    shipped = {manifest["binaries"][f.binary]["component"] for f in package.files if f.binary and f.binary in manifest["binaries"]}
    patch_sha1 = {}
    for component in sorted(shipped):
        for patch in manifest["components"][component].get("patches", []):
            path = layout.patch_dir(component) / patch["name"]
            data = path.read_bytes() if path.is_file() else b""
            if hashlib.sha256(data).hexdigest() != patch["sha256"]:
                raise PackageError(
                    f"patches/{component}/{patch['name']} is not the patch the build applied (sha256 {patch['sha256']})",
                    hint="build again (`dock32 build`), so that the binaries and the SBOM agree",
                )
            patch_sha1[patch["sha256"]] = hashlib.sha1(data).hexdigest()
    deb = PackedDeb(package, version, arch, deb_path.name, hashlib.sha256(deb_path.read_bytes()).hexdigest())
    document = build_sbom(deb, packaging, manifest, patch_sha1, config.release.date)
    final = dist / sbom_filename(package, version, arch)
    atomic.write_text(final, render(document))
    for stale in dist.glob(f"{package.name}_*.spdx.json"):
        if stale != final:
            stale.unlink()


def write(inputs: SbomInput, settings: Settings) -> None:
    """The sbom task: one package's SPDX document, from its stage input alone."""
    write_sbom(inputs.package, inputs, inputs.packaging, inputs.layout)
