"""The SPDX documents: built from a manifest and the package definitions alone, valid SPDX 2.3 (checked with
spdx-tools), complete (every dependency, toolchain, C source and library, patch) and the same for the same inputs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from dock32.core.errors import PackageError
from dock32.model.config import ArchiveSource, BuildConfig, DebPackage, GoModuleSource, load_config, load_packages, load_toolchains
from dock32.model.project import Project
from dock32.model.settings import settings_from_env
from dock32.packaging.debs import deb_filename, package_version, sbom_filename
from dock32.packaging.sbom import PackedDeb, build_sbom, go_purl, render
from dock32.pipeline.plan import plan_build
from dock32.sources.gocmd import parse_version_m

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "buildcfg.yaml")
PACKAGES = {p.name: p for p in load_packages(ROOT / "packaging" / "packages.yaml", CONFIG)}


def go_source(component: str) -> GoModuleSource:
    source = CONFIG.component(component).source
    assert isinstance(source, GoModuleSource), component
    return source


# The pinned Go and the engine's module, as a build of the shipped config records them.
GO = f"go{CONFIG.go_version}"
ENGINE_MODULE = go_source("engine").module

# What `go version -m` prints for dockerd, shortened: a dependency with its sum, the one dock32 patches (replaced
# by the copy in the tree) and one replaced by another module.
DOCKERD_VERSION_M = f"""\
/build/native32-i386/bin/dockerd: {GO}
\tpath\t{ENGINE_MODULE}/cmd/dockerd
\tmod\t{ENGINE_MODULE}\t(devel)\t
\tdep\tgithub.com/containerd/log\tv0.1.0\th1:TCJt7ioM2cr/tfR8GPbGf9/VRAX8D2B4PjzCpfX540I=
\tdep\tgithub.com/ishidawataru/sctp\tv0.0.0-20230406120618-7ff4192f6ff2
\t=>\t./_dock32/modules/github.com/ishidawataru/sctp\t(devel)\t
\tdep\tgithub.com/docker/go-units\tv0.5.0\th1:69rxXcBk27SvSaaxTtLh/8llcHD8vYHT7WSdRZ/jvr4=
\t=>\tgithub.com/example/go-units\tv0.5.1\th1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=
\tdep\tgolang.org/x/sys\tv0.30.0\th1:QjkSwP/36a20jFYWkSue1YwXzLmsV5Gfq7Eiy72C1uc=
\tbuild\t-buildmode=exe
\tbuild\t-trimpath=true
\tbuild\tCGO_ENABLED=0
\tbuild\tGOARCH=386
\tbuild\tGO386=sse2
\tbuild\tGOOS=linux
"""


def _go_binary(component: str, version: str, deps: list[str], cgo: bool = False) -> dict[str, Any]:
    text = DOCKERD_VERSION_M if component == "engine" else (
        f"/x: {GO}\n\tpath\texample\n\tmod\texample\t(devel)\t\n"
        + "".join(f"\tdep\t{d.replace(' ', chr(9))}\th1:{'B' * 43}=\n" for d in deps)
        + f"\tbuild\tCGO_ENABLED={int(cgo)}\n\tbuild\tGOARCH=386\n"
    )
    return {"component": component, "version": version, "sha256": "ab" * 32, "size": 1, "go_version_m": parse_version_m(text)}


def fake_manifest(config: BuildConfig) -> dict[str, Any]:
    """A build manifest for the real buildcfg.yaml, in the shape build.write_manifest writes."""
    binaries: dict[str, Any] = {}
    components: dict[str, Any] = {}
    for component in config.components:
        source = component.source
        components[component.name] = {
            "version": component.version,
            "commit": component.commit,
            "source": f"{source.module}@{source.version}" if hasattr(source, "module") else list(source.urls),
            "source_hash": getattr(source, "sum", None) or getattr(source, "tree", None),
            "patches": [],
        }
        for binary in component.binaries:
            if component.name == "tini":
                cc = "i686-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0"
                binaries[binary.name] = {"component": "tini", "version": component.version, "sha256": "cd" * 32, "size": 1, "cc": cc}
            else:
                deps = ["golang.org/x/sys v0.30.0", f"example.com/{component.name}/only v1.0.0"]
                binaries[binary.name] = _go_binary(component.name, component.version, deps, cgo=component.cgo)
    components["engine"]["patches"] = [
        {"name": "0001-seccomp-x86-subarches.patch", "sha256": "11" * 32},
        {"name": "0003-sctp-on-386.patch", "sha256": "33" * 32},
    ]
    components["runc"]["patches"] = [{"name": "0001-use-released-go-selinux.patch", "sha256": "22" * 32}]
    seccomp = {"name": "libseccomp", "version": "2.5.4", "deb_package": "libseccomp-dev", "deb_version": "2.5.4-1+deb12u1", "deb_arch": "i386"}
    seccomp["deb_vendor"] = "debian"
    components["runc"]["c_libraries"] = [seccomp]
    return {
        "release": config.release.version,
        "target": config.target,
        "arch": "i386",
        "toolchain": {
            "go": GO,
            "go_pinned": GO,
            "go_source": f"module golang.org/toolchain@v0.0.1-{GO}.linux-amd64",
            "cc": "i686-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0",
            "libc": {"name": "libc", "deb_package": "libc6-dev-i386-cross", "deb_version": "2.36-8cross1", "deb_arch": "all", "deb_vendor": "debian"},
        },
        "components": components,
        "binaries": binaries,
    }


PATCH_SHA1 = {"11" * 32: "a1" * 20, "22" * 32: "a2" * 20, "33" * 32: "a3" * 20}


def packed(package: DebPackage, sha256: str = "ee" * 32) -> PackedDeb:
    version = package_version(package, CONFIG, CONFIG.packaging)
    return PackedDeb(package, version, "i386", deb_filename(package, version, "i386"), sha256)


def sbom_of(name: str, manifest: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    return build_sbom(packed(PACKAGES[name], **changes), CONFIG.packaging, manifest or fake_manifest(CONFIG), PATCH_SHA1, CONFIG.release.date)


def by_id(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["SPDXID"]: e for e in [*document["packages"], *document["files"]]}


def related(document: dict[str, Any], source: str, kind: str) -> set[str]:
    return {r["relatedSpdxElement"] for r in document["relationships"] if r["spdxElementId"] == source and r["relationshipType"] == kind}


def purls(element: dict[str, Any]) -> list[str]:
    return [r["referenceLocator"] for r in element.get("externalRefs", []) if r["referenceType"] == "purl"]


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_every_package_gives_a_valid_spdx_2_3_document(name: str) -> None:
    document = sbom_of(name)
    parsed = JsonLikeDictParser().parse(json.loads(render(document)))
    assert [m.validation_message for m in validate_full_spdx_document(parsed, "SPDX-2.3")] == []
    assert document["spdxVersion"] == "SPDX-2.3" and document["dataLicense"] == "CC0-1.0" and document["SPDXID"] == "SPDXRef-DOCUMENT"
    assert document["creationInfo"]["creators"] == ["Tool: dock32-0.1.0"]


def test_the_document_describes_the_deb_with_its_hash_and_contains_its_binaries() -> None:
    document = sbom_of("docker-ce", sha256="12" * 32)
    elements = by_id(document)
    (described,) = related(document, "SPDXRef-DOCUMENT", "DESCRIBES")
    deb = elements[described]
    version = package_version(PACKAGES["docker-ce"], CONFIG, CONFIG.packaging)  # 5:<engine>-1~debian.12~bookworm
    escaped = version.replace(":", "%3A")
    assert deb["name"] == "docker-ce" and deb["versionInfo"] == version
    assert deb["packageFileName"] == f"docker-ce_{version.split(':', 1)[-1]}_i386.deb"
    assert deb["checksums"] == [{"algorithm": "SHA256", "checksumValue": "12" * 32}]
    assert purls(deb) == [f"pkg:deb/debian/docker-ce@{escaped}?arch=i386&distro={CONFIG.packaging.distro_name}"]
    assert document["documentNamespace"] == f"https://dock32.invalid/spdx/docker-ce-{escaped}-" + "12" * 32
    contained = {elements[i]["name"]: elements[i] for i in related(document, described, "CONTAINS")}
    assert set(contained) == {"dockerd", "docker-proxy", "docker-init"}
    assert contained["docker-init"]["packageFileName"] == "usr/libexec/docker/docker-init"
    assert contained["dockerd"]["checksums"] == [{"algorithm": "SHA256", "checksumValue": "ab" * 32}]


def test_every_go_dependency_is_a_package_with_its_purl_and_sum_linked_from_its_binaries() -> None:
    document = sbom_of("docker-ce")
    elements = by_id(document)
    modules = {(e["name"], e["versionInfo"]): e for e in document["packages"] if e["SPDXID"].startswith("SPDXRef-GoModule-")}
    for dep in parse_version_m(DOCKERD_VERSION_M)["deps"]:  # type: ignore[attr-defined]
        module, version = dep.split(" ")
        assert (module, version) in modules, dep
        assert go_purl(module, version) in purls(modules[(module, version)])
        assert modules[(module, version)]["SPDXID"] in related(document, "SPDXRef-Binary-dockerd", "STATIC_LINK")
    assert "go.sum h1:TCJt7ioM2cr/tfR8GPbGf9/VRAX8D2B4PjzCpfX540I=" in modules[("github.com/containerd/log", "v0.1.0")]["comment"]
    sctp = modules[("github.com/ishidawataru/sctp", "v0.0.0-20230406120618-7ff4192f6ff2")]
    assert "./_dock32/modules/github.com/ishidawataru/sctp" in sctp["comment"] and "patches change" in sctp["comment"]
    # A module replaced by another module: both are listed, the replacement with its own sum.
    assert "replaced in the build by github.com/example/go-units v0.5.1" in modules[("github.com/docker/go-units", "v0.5.0")]["comment"]
    assert "go.sum h1:" + "A" * 43 + "=" in modules[("github.com/example/go-units", "v0.5.1")]["comment"]
    # Modules shared by two binaries are listed once and linked from both.
    (sys_module,) = [e["SPDXID"] for (name, _), e in modules.items() if name == "golang.org/x/sys"]
    users = {r["spdxElementId"] for r in document["relationships"] if r["relatedSpdxElement"] == sys_module}
    assert users == {"SPDXRef-Binary-dockerd", "SPDXRef-Binary-docker-proxy"}
    assert elements["SPDXRef-Binary-dockerd"]["versionInfo"] == CONFIG.component("engine").version
    assert "GOARCH=386" in elements["SPDXRef-Binary-dockerd"]["comment"]


def test_go_toolchain_and_standard_library() -> None:
    document = sbom_of("docker-ce-cli")
    elements = by_id(document)
    (std,) = related(document, "SPDXRef-Binary-docker", "STATIC_LINK") & {e for e in elements if e.startswith("SPDXRef-GoStd")}
    assert elements[std]["versionInfo"] == GO
    assert purls(elements[std]) == [f"pkg:golang/std@{GO}", f"pkg:golang/stdlib@{CONFIG.go_version}"]
    (tool,) = [e for e in elements if e.startswith("SPDXRef-GoToolchain")]
    assert purls(elements[tool]) == [f"pkg:golang/golang.org/toolchain@v0.0.1-{GO}.linux-amd64"]
    assert "SPDXRef-Binary-docker" in related(document, tool, "BUILD_TOOL_OF")
    # No C in the CLI: no compiler, no C library, no patches.
    assert not [e for e in elements if e.startswith(("SPDXRef-CCompiler", "SPDXRef-CLibrary", "SPDXRef-Patch"))]
    cli = go_source("cli")
    assert elements["SPDXRef-Source-cli"]["name"] == cli.module
    assert purls(elements["SPDXRef-Source-cli"]) == [f"pkg:golang/{cli.module}@{cli.version.replace('+', '%2B')}"]


def test_patches_are_files_with_both_hashes_applied_to_their_component() -> None:
    document = sbom_of("docker-ce")
    patches = {e["fileName"]: e for e in document["files"]}
    assert set(patches) == {"./patches/engine/0001-seccomp-x86-subarches.patch", "./patches/engine/0003-sctp-on-386.patch"}
    first = patches["./patches/engine/0001-seccomp-x86-subarches.patch"]
    assert first["checksums"] == [{"algorithm": "SHA1", "checksumValue": "a1" * 20}, {"algorithm": "SHA256", "checksumValue": "11" * 32}]
    assert related(document, first["SPDXID"], "PATCH_APPLIED") == {"SPDXRef-Source-engine"}
    assert related(document, "SPDXRef-Binary-dockerd", "GENERATED_FROM") == {"SPDXRef-Source-engine"}
    with pytest.raises(PackageError, match="no SHA-1 for patches/engine/0001"):
        build_sbom(packed(PACKAGES["docker-ce"]), CONFIG.packaging, fake_manifest(CONFIG), {}, CONFIG.release.date)


def test_tini_and_libseccomp_and_libc_are_listed_with_their_pins() -> None:
    ce = sbom_of("docker-ce")
    elements = by_id(ce)
    tini = elements["SPDXRef-Source-tini"]
    pinned = CONFIG.component("tini")
    assert isinstance(pinned.source, ArchiveSource)
    assert tini["versionInfo"] == pinned.version and pinned.source.tree in tini["comment"]
    upstream = [url for url in pinned.source.urls if "{debian_mirror}" not in url]
    assert tini["downloadLocation"] == upstream[0]  # not the {debian_mirror} one
    assert related(ce, "SPDXRef-Binary-docker-init", "GENERATED_FROM") == {"SPDXRef-Source-tini"}
    assert "SPDXRef-Binary-docker-init" in related(ce, "SPDXRef-CCompiler-i686-linux-gnu-gcc", "BUILD_TOOL_OF")
    assert related(ce, "SPDXRef-Binary-docker-init", "STATIC_LINK") == {"SPDXRef-CLibrary-libc"}
    assert not related(ce, "SPDXRef-Binary-dockerd", "STATIC_LINK") & {"SPDXRef-CLibrary-libc"}  # CGO_ENABLED=0

    containerd = sbom_of("containerd.io")
    elements = by_id(containerd)
    seccomp = elements["SPDXRef-CLibrary-libseccomp"]
    assert (seccomp["name"], seccomp["versionInfo"]) == ("libseccomp-dev", "2.5.4-1+deb12u1")
    assert purls(seccomp) == ["pkg:deb/debian/libseccomp-dev@2.5.4-1%2Bdeb12u1?arch=i386"]
    assert purls(elements["SPDXRef-CLibrary-libc"]) == ["pkg:deb/debian/libc6-dev-i386-cross@2.36-8cross1?arch=all"]
    assert related(containerd, "SPDXRef-Binary-runc", "STATIC_LINK") >= {"SPDXRef-CLibrary-libseccomp", "SPDXRef-CLibrary-libc"}
    assert "SPDXRef-CLibrary-libseccomp" not in related(containerd, "SPDXRef-Binary-containerd", "STATIC_LINK")
    assert {e["fileName"] for e in containerd["files"]} == {"./patches/runc/0001-use-released-go-selinux.patch"}


def test_a_c_library_dpkg_does_not_know_is_still_listed() -> None:
    manifest = fake_manifest(CONFIG)
    manifest["components"]["runc"]["c_libraries"] = [{"name": "libseccomp", "version": "2.5.4"}]
    seccomp = by_id(sbom_of("containerd.io", manifest))["SPDXRef-CLibrary-libseccomp"]
    assert (seccomp["name"], seccomp["versionInfo"], purls(seccomp)) == ("libseccomp", "2.5.4", [])


def test_same_inputs_give_the_same_bytes_and_the_date_is_the_release_date() -> None:
    first, second = render(sbom_of("containerd.io")), render(sbom_of("containerd.io"))
    assert first == second
    assert json.loads(first)["creationInfo"]["created"] == CONFIG.release.date.strftime("%Y-%m-%dT%H:%M:%SZ")
    later = dataclasses.replace(CONFIG.release, date=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    document = build_sbom(packed(PACKAGES["containerd.io"]), CONFIG.packaging, fake_manifest(CONFIG), PATCH_SHA1, later.date)
    assert document["creationInfo"]["created"] == "2030-01-02T03:04:05Z"
    assert render(sbom_of("containerd.io", sha256="ff" * 32)) != first  # another .deb, another namespace


def test_ids_stay_unique_when_names_collide_after_cleaning() -> None:
    manifest = fake_manifest(CONFIG)
    text = f"/x: {GO}\n\tpath\tp\n\tdep\texample.com/a_b\tv1.0.0\n\tdep\texample.com/a-b\tv1.0.0\n\tbuild\tCGO_ENABLED=0\n"
    manifest["binaries"]["docker"]["go_version_m"] = parse_version_m(text)
    document = sbom_of("docker-ce-cli", manifest)
    ids = [e["SPDXID"] for e in document["packages"]]
    assert len(ids) == len(set(ids))
    assert {e["name"] for e in document["packages"]} >= {"example.com/a_b", "example.com/a-b"}


def test_a_binary_missing_from_the_manifest_is_an_error() -> None:
    manifest = fake_manifest(CONFIG)
    del manifest["binaries"]["runc"]
    with pytest.raises(PackageError, match="no binary runc"):
        sbom_of("containerd.io", manifest)


def test_go_version_m_parsing_keeps_sums_and_replacements() -> None:
    info = parse_version_m(DOCKERD_VERSION_M)
    assert info["go"] == GO and info["path"] == f"{ENGINE_MODULE}/cmd/dockerd"
    assert "github.com/ishidawataru/sctp v0.0.0-20230406120618-7ff4192f6ff2" in info["deps"]  # type: ignore[operator]
    assert info["sums"]["golang.org/x/sys"] == "h1:QjkSwP/36a20jFYWkSue1YwXzLmsV5Gfq7Eiy72C1uc="  # type: ignore[index]
    assert info["replace"] == {  # type: ignore[comparison-overlap]
        "github.com/ishidawataru/sctp": {"path": "./_dock32/modules/github.com/ishidawataru/sctp", "version": "(devel)"},
        "github.com/docker/go-units": {"path": "github.com/example/go-units", "version": "v0.5.1", "sum": "h1:" + "A" * 43 + "="},
    }
    assert info["settings"]["GO386"] == "sse2"  # type: ignore[index]
    assert parse_version_m("") == {}


def test_go_purls_encode_what_purl_escapes() -> None:
    assert go_purl("example.com/old", "v3.1.4+incompatible") == "pkg:golang/example.com/old@v3.1.4%2Bincompatible"
    assert go_purl("github.com/BurntSushi/toml", "v1.4.0") == "pkg:golang/github.com/BurntSushi/toml@v1.4.0"


def test_plan_writes_each_sbom_after_its_deb_and_before_the_repository(tmp_path: Path) -> None:
    env = {"DOCK32_CACHE_DIR": str(tmp_path / "c"), "DOCK32_BUILD_DIR": str(tmp_path / "b"), "DOCK32_DIST_DIR": str(tmp_path / "d")}
    settings = settings_from_env(ROOT, env=env)
    tasks = {t.task_id: t for t in plan_build(Project.of(CONFIG, load_toolchains(ROOT / "toolchains"), settings, tuple(PACKAGES.values())))}
    dist = tmp_path / "d" / "native32-i386"
    for name, package in PACKAGES.items():
        task = tasks[f"sbom:{name}"]
        version = package_version(package, CONFIG, CONFIG.packaging)
        assert task.targets == (dist / sbom_filename(package, version, "i386"),)
        assert tasks[f"package:{name}"].targets[0] in task.file_dep
        assert tmp_path / "b" / "native32-i386" / "manifest.json" in task.file_dep
        assert task.targets[0] in tasks["repository"].file_dep
    assert ROOT / "patches" / "engine" / "0003-sctp-on-386.patch" in tasks["sbom:docker-ce"].file_dep
    assert ROOT / "patches" / "runc" / "series" in tasks["sbom:containerd.io"].file_dep
    assert not any("patches" in str(p) for p in tasks["sbom:docker-ce-cli"].file_dep)
    assert sbom_filename(PACKAGES["docker-ce"], "5:1.2.3-1~debian.12~bookworm", "i386") == "docker-ce_1.2.3-1~debian.12~bookworm_i386.spdx.json"
    assert tasks["manifest"].config["format"] >= 2  # the manifest is written again with what the SBOMs need


def test_write_sbom_puts_the_document_beside_the_deb_and_refuses_a_patch_changed_since_the_build(tmp_path: Path) -> None:
    from dock32.model.layout import Layout
    from dock32.packaging.sbom import write_sbom

    layout = Layout.of(tmp_path / "build", tmp_path / "dist", CONFIG.target, ROOT)
    package = PACKAGES["containerd.io"]
    version = package_version(package, CONFIG, CONFIG.packaging)
    layout.dist_dir.mkdir(parents=True)
    (layout.dist_dir / deb_filename(package, version, "i386")).write_bytes(b"a .deb")
    stale = layout.dist_dir / "containerd.io_1.7.27-1~debian.12~bookworm_i386.spdx.json"
    stale.write_text("{}")
    manifest = fake_manifest(CONFIG)
    patch = ROOT / "patches" / "runc" / "0001-use-released-go-selinux.patch"
    manifest["components"]["runc"]["patches"] = [{"name": patch.name, "sha256": hashlib.sha256(patch.read_bytes()).hexdigest()}]
    layout.manifest.parent.mkdir(parents=True)
    layout.manifest.write_text(json.dumps(manifest))

    write_sbom(package, CONFIG, CONFIG.packaging, layout)
    written = layout.dist_dir / sbom_filename(package, version, "i386")
    document = json.loads(written.read_text())
    assert document["packages"][0]["checksums"] == [{"algorithm": "SHA256", "checksumValue": hashlib.sha256(b"a .deb").hexdigest()}]
    (listed,) = document["files"]
    assert {"algorithm": "SHA1", "checksumValue": hashlib.sha1(patch.read_bytes()).hexdigest()} in listed["checksums"]
    assert not stale.exists()
    first = written.read_bytes()
    write_sbom(package, CONFIG, CONFIG.packaging, layout)
    assert written.read_bytes() == first

    manifest["components"]["runc"]["patches"][0]["sha256"] = "00" * 32
    layout.manifest.write_text(json.dumps(manifest))
    with pytest.raises(PackageError, match="not the patch the build applied"):
        write_sbom(package, CONFIG, CONFIG.packaging, layout)
