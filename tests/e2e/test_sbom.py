"""The SBOMs of the real build, checked against the binaries themselves: every module `go version -m` finds in a
shipped binary, the Go version, every patch of the series with its hash, libseccomp's Debian version, and
SHA256SUMS and manifest.json listing each document with its hash."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from dock32.model.config import GoModuleSource, load_packages
from dock32.packaging.debs import deb_filename, package_version, sbom_filename
from dock32.packaging.sbom import go_purl
from dock32.sources.patches import read_series

from .conftest import BIN, CONFIG, DIST, ROOT, SETTINGS

pytestmark = pytest.mark.e2e

PACKAGES = load_packages(ROOT / "packaging" / "packages.yaml", CONFIG)
GO_BINARIES = {b.name: c for c in CONFIG.components if isinstance(c.source, GoModuleSource) for b in c.binaries}
COMPONENT_OF = {b.name: c for c in CONFIG.components for b in c.binaries}


@pytest.fixture(scope="module", autouse=True)
def built(release_build: Path) -> Path:
    return release_build


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def go_version_m(binary: Path) -> tuple[str, list[tuple[str, str]]]:
    """The Go version and the (module, version) of each dependency, read here with the build's own go command."""
    go = json.loads((SETTINGS.build_dir / CONFIG.target / "toolchain.json").read_text(encoding="utf-8"))["go"]
    out = subprocess.run([go, "version", "-m", binary], capture_output=True, text=True, check=True, env={**os.environ, "GOTOOLCHAIN": "local"}).stdout
    lines = out.splitlines()
    deps = [(f[1], f[2]) for f in (line.strip().split("\t") for line in lines[1:]) if f[0] == "dep"]
    return lines[0].split(": ", 1)[1].strip(), deps


def documents() -> list[tuple[Any, Path]]:
    arch = CONFIG.host_arch.names.debian
    return [(p, DIST / sbom_filename(p, package_version(p, CONFIG, CONFIG.packaging), arch)) for p in PACKAGES]


def purls(element: dict[str, Any]) -> set[str]:
    return {r["referenceLocator"] for r in element.get("externalRefs", []) if r["referenceType"] == "purl"}


@pytest.mark.parametrize("package", PACKAGES, ids=[p.name for p in PACKAGES])
def test_sbom_matches_what_the_binaries_say(package) -> None:  # type: ignore[no-untyped-def]
    version = package_version(package, CONFIG, CONFIG.packaging)
    path = DIST / sbom_filename(package, version, CONFIG.host_arch.names.debian)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert [m.validation_message for m in validate_full_spdx_document(JsonLikeDictParser().parse(document), "SPDX-2.3")] == []
    elements = {e["SPDXID"]: e for e in document["packages"]}
    by_name = {e["name"]: e for e in document["packages"]}
    links = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in document["relationships"]}

    deb = DIST / deb_filename(package, version, CONFIG.host_arch.names.debian)
    (described,) = [b for a, kind, b in links if a == "SPDXRef-DOCUMENT" and kind == "DESCRIBES"]
    assert elements[described]["checksums"] == [{"algorithm": "SHA256", "checksumValue": sha256(deb)}]
    assert document["documentNamespace"].endswith(sha256(deb))

    modules = {(e["name"], e.get("versionInfo")): e for e in document["packages"] if e["SPDXID"].startswith("SPDXRef-GoModule-")}
    shipped = [f.binary for f in package.files if f.binary]
    for name in shipped:
        binary = by_name[name]
        assert binary["checksums"] == [{"algorithm": "SHA256", "checksumValue": sha256(BIN / name)}], name
        if name not in GO_BINARIES:
            continue
        go, deps = go_version_m(BIN / name)
        assert deps, name
        std = [elements[b] for a, kind, b in links if a == binary["SPDXID"] and kind == "STATIC_LINK" and b.startswith("SPDXRef-GoStd-")]
        assert [s["versionInfo"] for s in std] == [go], name
        for module, module_version in deps:
            found = modules.get((module, module_version))
            assert found is not None, f"{name}: {module}@{module_version} is not in {path.name}"
            assert go_purl(module, module_version) in purls(found)
            assert (binary["SPDXID"], "STATIC_LINK", found["SPDXID"]) in links, f"{name}: {module}"

    patch_files = {f["fileName"]: f for f in document["files"]}
    components = {COMPONENT_OF[name] for name in shipped}
    expected = set()
    for component in components:
        for patch in read_series(ROOT / "patches" / component.name):
            if patch.applies_to(component.version):
                listed = patch_files[f"./patches/{component.name}/{patch.path.name}"]
                data = patch.path.read_bytes()
                assert {"algorithm": "SHA256", "checksumValue": hashlib.sha256(data).hexdigest()} in listed["checksums"]
                assert {"algorithm": "SHA1", "checksumValue": hashlib.sha1(data).hexdigest()} in listed["checksums"]
                assert (listed["SPDXID"], "PATCH_APPLIED", f"SPDXRef-Source-{component.name}") in links
                expected.add(listed["fileName"])
    assert set(patch_files) == expected


def test_libseccomp_is_the_debian_package_runc_was_linked_with() -> None:
    (package,) = [p for p in PACKAGES if any(f.binary == "runc" for f in p.files)]
    version = package_version(package, CONFIG, CONFIG.packaging)
    document = json.loads((DIST / sbom_filename(package, version, CONFIG.host_arch.names.debian)).read_text(encoding="utf-8"))
    arch = CONFIG.host_arch.names.debian
    installed = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", f"libseccomp-dev:{arch}"], capture_output=True, text=True, check=True).stdout
    (seccomp,) = [e for e in document["packages"] if e["name"] == "libseccomp-dev"]
    assert seccomp["versionInfo"] == installed
    assert purls(seccomp) == {f"pkg:deb/debian/libseccomp-dev@{installed.replace('+', '%2B')}?arch={arch}"}
    (runc,) = [e for e in document["packages"] if e["name"] == "runc" and e["SPDXID"].startswith("SPDXRef-Binary-")]
    assert {"spdxElementId": runc["SPDXID"], "relationshipType": "STATIC_LINK", "relatedSpdxElement": seccomp["SPDXID"]} in document["relationships"]


def test_sha256sums_and_the_manifest_list_every_sbom() -> None:
    sums = {name: digest for digest, name in (line.split("  ", 1) for line in (DIST / "SHA256SUMS").read_text(encoding="utf-8").splitlines())}
    manifest = json.loads((DIST / "manifest.json").read_text(encoding="utf-8"))
    for package, path in documents():
        assert sums[path.name] == sha256(path), path.name
        assert manifest["packages"][package.name]["sbom"] == path.name
        assert manifest["packages"][package.name]["sbom_sha256"] == sha256(path)
    assert sorted(p.name for p in DIST.glob("*.spdx.json")) == sorted(path.name for _, path in documents())
