"""The bump itself: from a Docker version to every new pin, with the reasons, notes and patch checks."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from dock32.build.steps import prepare_tree
from dock32.bump.enginetags import (
    BETA_PREFIX,
    DOCKER_DOCKER,
    MOBY_V2,
    WINDOW,
    EngineLine,
    Identified,
    beta_number,
    engine_line,
    near,
    neighbours,
    span,
)
from dock32.bump.mobytags import MobyTags, cli_module, engine_component
from dock32.bump.rules import ENGINE, PLUGIN, PLUGIN_ARGS, PLUGIN_BATCH, RELEASE, RULES
from dock32.bump.upstreamfiles import upstream_arg
from dock32.bump.versions import SEMVER, commit_for, core, major, module_path, module_version, names_module, newest_before, rewrite_module_path, version_field
from dock32.core.errors import ConfigError, Dock32Error, FetchError
from dock32.model.config import ArchiveSource, BuildConfig, Component, GoBinary, GoModuleSource, load_toolchains
from dock32.model.settings import Settings
from dock32.model.yamledit import Change, Path_, append_go_pin, borrowed, scalar_nodes, written_once
from dock32.sources import fetch
from dock32.sources.gocmd import Go, Module, format_time
from dock32.sources.patches import check_series, read_series
from dock32.sources.trees import tree_hash_of_archive, unpack
from dock32.toolchains.toolchain import choose_go


@dataclass
class Bump:
    """What a bump found and will change."""

    version: str
    changes: list[Change] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # where each version came from
    notes: list[str] = field(default_factory=list)  # warnings: things to look at by hand
    patches: list[str] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)  # file -> new text

    def change(self, file: str, path: Path_, old: str, new: str, key: bool = False, comment: str | None = None) -> None:
        if old != new:
            self.changes.append(Change(file, path, old, new, key, comment=comment))

    def remove(self, file: str, path: Path_, old: str) -> None:
        self.changes.append(Change(file, path, old, "", remove=True))


@dataclass(frozen=True)
class NewTree:
    """A component's new pristine tree, for checking its patches."""

    component: Component  # as the new pins describe it
    source_dir: Path | None = None  # a Go module's Dir in the module cache (read-only)
    archive: Path | None = None  # a downloaded tarball


@dataclass(frozen=True)
class EnginePick:
    """The engine module of the release, and how it was found."""

    module: Module
    line: EngineLine
    origin: str  # for "versions found"
    comment: str | None = None  # for the module version's line in buildcfg.yaml


class Resolver:
    def __init__(self, project: Path, config: BuildConfig, settings: Settings, workdir: Path) -> None:
        self.project = project
        self.config = config
        self.settings = settings
        self.workdir = workdir
        go, self.go_description = choose_go(config, load_toolchains(project / "toolchains"), settings)
        self.go = Go(go, settings, workdir)
        self.tags = MobyTags(self.go)
        self.trees: list[NewTree] = []

    def run(self, version: str, engine_version: str | None = None) -> Bump:
        bump = Bump(version)
        config = self.config
        engine = engine_component(config)
        pick = self._engine(bump, engine, version, engine_version)
        engine_module = pick.module
        if engine_module.time is None:
            raise FetchError(f"{engine_module.path}@{engine_module.version}: the proxy's .info gives no Time; cannot set release.date")
        release_time = engine_module.time
        bump.change("buildcfg.yaml", ("release", "version"), config.release.version, version)
        if format_time(config.release.date) != format_time(release_time):  # the same instant keeps the text as written
            values, _ = scalar_nodes(self._text("buildcfg.yaml"))
            bump.change("buildcfg.yaml", ("release", "date"), str(values[("release", "date")].value), format_time(release_time))
        bump.sources.append(f"release.date {format_time(release_time)}: time of {engine_module.path}@{engine_module.version} in the proxy's .info")
        self._go_version(bump, engine_module.dir)
        for component in config.components:
            rule = RULES.get(component.name)
            if rule is None:
                bump.notes.append(f"{component.name}: bump does not know where its version comes from; its pins are left as they are")
                continue
            if rule == RELEASE:
                new_version, origin = version, (pick.origin if component.name == ENGINE else f"the release {version}")
            elif rule == PLUGIN and not pick.line.plugins_from_dockerfile:
                found = self._plugin_version(component, release_time)
                if found is None:
                    bump.notes.append(f"{component.name}: no release of its module at or before {format_time(release_time)}; left as it is")
                    continue
                new_version, origin = found
            else:
                name = PLUGIN_ARGS[component.name] if rule == PLUGIN else rule
                arg = upstream_arg(engine_module.dir, name)
                if arg is None:
                    bump.notes.append(f"{component.name}: moby {version} sets no {name} (Dockerfile or hack/dockerfile/install); left as it is")
                    continue
                new_version, origin = arg
            if component.name == ENGINE:
                old_tag = engine_line(core(component.version)).tag(core(component.version))
                self._component(bump, component, new_version, origin, engine_module, pick.line.tag(version), old_tag, pick.comment)
            else:
                self._component(bump, component, new_version, origin)
        self._unpinned(bump, engine_module.dir)
        return bump

    def _engine(self, bump: Bump, engine: Component, version: str, engine_version: str | None) -> EnginePick:
        """The engine module of release version, by its line: derived from the version up to 28.x, found among the
        moby/moby/v2 tags from 29.x (or named: --engine-version, or the pinned tag when the release stays)."""
        assert isinstance(engine.source, GoModuleSource)
        line = engine_line(version)
        tag = line.tag(version)
        if not line.tagged_by_beta:
            if engine_version:
                raise ConfigError(f"bump {version}: --engine-version is for 29.x releases, whose engine is a {MOBY_V2} tag")
            module_name = engine.source.module if engine.source.module != MOBY_V2 else DOCKER_DOCKER
            module = self.go.download(f"{module_name}@v{version}+incompatible", ENGINE)
            # Back from a moby v2 tag: the comment that named its docker-v tag goes with it.
            comment = f"{tag}: the release's own module version" if engine.source.module == MOBY_V2 else None
            return EnginePick(module, line, f"the release {version}: {module.path}@{module.version}", comment)
        chosen_by = "--engine-version"
        if engine_version is None and engine.source.module == MOBY_V2 and self.config.release.version == version:
            engine_version, chosen_by = engine.source.version, "the pinned tag"  # the release stays: so does its tag
        if engine_version is not None and beta_number(engine_version) is None:
            raise ConfigError(f"bump {version}: --engine-version {engine_version!r} is not a tag like {BETA_PREFIX}24")
        evidence, failure = self._evidence(version)
        if engine_version is None:
            if evidence is None:
                raise failure or FetchError(f"engine: no evidence for Docker {version}'s {MOBY_V2} tag")
            read = len(near(evidence.cli_time, self.tags.times))
            asked = f"{self.tags.asked()}; read the trees of the {read} within {span(WINDOW)} of the CLI's tag"
            module = self.tags.module(evidence.candidate.version)
            return EnginePick(module, line, f"{MOBY_V2}@{module.version} is {tag}: {evidence.how} ({asked})", evidence.comment(tag))
        origin, comment = f"{MOBY_V2}@{engine_version} is {tag}: {chosen_by}", f"{tag}: named with --engine-version"
        if evidence is not None and evidence.candidate.version == engine_version:
            origin, comment = f"{origin}; the evidence agrees: {evidence.how}", evidence.comment(tag)
        elif evidence is not None:
            bump.notes.append(f"engine: {chosen_by} {engine_version} kept, but the evidence points at {evidence.candidate.version} ({evidence.how})")
        else:
            reason = failure.message.removeprefix("engine: ") if failure else "none found"
            bump.notes.append(f"engine: {chosen_by} {engine_version} kept; the evidence alone does not settle it: {reason}")
        return EnginePick(self.tags.module(engine_version), line, origin, comment)

    def _evidence(self, version: str) -> tuple[Identified | None, FetchError | None]:
        """Which moby/moby/v2 tag the proxy's evidence names as release version, or why it names none."""
        self.tags.probe()
        if not self.tags.times:
            return None, FetchError(f"engine: the proxy serves no {MOBY_V2} tag ({self.tags.asked()})", hint="check GOPROXY and the network")
        cli = cli_module(self.config)
        wanted = [version, *neighbours(version)]
        infos = self.go.infos(cli, [f"v{release}+incompatible" for release in wanted])
        times = {release: info.time for release in wanted if (info := infos[f"v{release}+incompatible"]).time}
        if version not in times:
            return None, FetchError(
                f"engine: cannot find Docker {version}'s {MOBY_V2} tag: the proxy has no {cli}@v{version}+incompatible to date the release by "
                f"({infos[f'v{version}+incompatible'].error})",
                hint=f"check that {version} is a Docker release; or name the tag: --engine-version {BETA_PREFIX}N",
            )
        cli_time = times.pop(version)
        try:
            return self.tags.identify(version, f"{cli}@v{version}+incompatible", cli_time, times), None
        except FetchError as exc:
            return None, exc

    def _go_version(self, bump: Bump, tree: Path) -> None:
        arg = upstream_arg(tree, "GO_VERSION")
        if arg is None:
            bump.notes.append("go.version: moby's Dockerfile sets no GO_VERSION; left as it is")
            return
        new, origin = arg
        if not re.fullmatch(r"1\.\d+(\.\d+)?", new):
            raise FetchError(f"moby {bump.version}: ARG GO_VERSION={new!r} is not a Go version like 1.24.9")
        bump.sources.append(f"go {new}: {origin}")
        old = self.config.go_version
        bump.change("buildcfg.yaml", ("go", "version"), old, new)
        toolchains = load_toolchains(self.project / "toolchains")
        if new in toolchains.go:
            bump.sources.append(f"toolchains/go.yaml {new}: already pinned there; kept")
            return
        go_yaml = "toolchains/go.yaml"
        model = toolchains.go.get(old)
        platforms = list(model.sums) if model else ["linux-amd64"]
        sums = {}
        for platform in platforms:
            ref = f"golang.org/toolchain@v0.0.1-go{new}.{platform}"
            sums[platform] = self.go.download(ref, f"Go {new} for {platform}").sum
        bump.sources.append(f"toolchains/go.yaml {new}: h1 sums of golang.org/toolchain v0.0.1-go{new}.{{{','.join(platforms)}}}")
        if old in toolchains.go:
            bump.change(go_yaml, ("go", old), old, new, key=True)
            for platform, value in sums.items():
                bump.change(go_yaml, ("go", old, platform), toolchains.go[old].sums[platform], value)
        else:
            bump.texts[go_yaml] = append_go_pin(self._text(go_yaml), new, sums)

    def _unpinned(self, bump: Bump, tree: Path) -> None:
        """The versions moby pins for components the config does not build: said, not added."""
        have = {component.name for component in self.config.components}
        for name, rule in RULES.items():
            if name in have or rule in (RELEASE, PLUGIN):
                continue
            arg = upstream_arg(tree, rule)
            if arg:
                bump.notes.append(f"{name}: {arg[1]} is {arg[0]}; buildcfg.yaml has no {name} component, so nothing pins it (add one to build it)")

    def _text(self, file: str) -> str:
        return (self.project / file).read_text(encoding="utf-8")

    def _plugin_version(self, component: Component, limit: datetime) -> tuple[str, str] | None:
        if not isinstance(component.source, GoModuleSource):
            return None
        module = component.source.module
        wanted_major = major(component.source.version)
        listed = [v for v in self.go.versions(module) if SEMVER.fullmatch(v) and major(v) == wanted_major]
        listed.sort(key=lambda v: tuple(int(n) for n in v[1:].split(".")), reverse=True)
        for start in range(0, len(listed), PLUGIN_BATCH):
            batch = listed[start : start + PLUGIN_BATCH]
            chosen = newest_before(self.go.times(module, batch), limit)
            if chosen:
                return version_field(component.version, core(chosen)), f"newest tagged {module} at or before the engine tag ({format_time(limit)})"
        return None

    def _component(
        self,
        bump: Bump,
        component: Component,
        new_version_text: str,
        origin: str,
        pinned: Module | None = None,
        tag: str | None = None,
        old_tag: str | None = None,
        comment: str | None = None,
    ) -> None:
        """Every pin of one component for its new version. pinned: the module already chosen (the engine's), with its
        git tag and the old version's; comment: what to say beside a new module version."""
        name = component.name
        new_core = core(new_version_text)
        new_version = version_field(component.version, new_core)
        unchanged = core(component.version) == new_core
        bump.sources.append(f"{name} {new_version}: {origin}")
        base = ("components", name)
        bump.change("buildcfg.yaml", (*base, "version"), component.version, new_version)
        source = component.source
        if isinstance(source, GoModuleSource):
            if pinned is not None:
                new_module, new_source_version = pinned.path, pinned.version
            else:
                new_source_version = module_version(source, core(component.version), new_core)
                new_module = module_path(source, new_source_version)
            module = pinned or self.go.download(f"{new_module}@{new_source_version}", name)
            if unchanged and new_module == source.module and new_source_version == source.version:
                if module.sum != source.sum:
                    raise FetchError(
                        f"{name}: {source.ref}: the proxy gives {module.sum}, the pin says {source.sum}",
                        hint="the same version with other content: check GOPROXY; re-pin by hand only if upstream re-tagged",
                    )
                return
            bump.change("buildcfg.yaml", (*base, "source", "module"), source.module, new_module)
            bump.change("buildcfg.yaml", (*base, "source", "version"), source.version, new_source_version, comment=comment)
            bump.change("buildcfg.yaml", (*base, "source", "sum"), source.sum, module.sum)
            modfile = self._modfile(bump, component, module)
            if new_module != source.module:
                self._rename_module(bump, component, source.module, new_module)
            self._check_packages(bump, component, module)
            missing = f"the proxy records no commit for {module.path}@{module.version} (its .info has no Origin.Hash)" if tag else ""
            commit, warning = commit_for(component, new_version, new_source_version, module.origin_hash, missing, tag, old_tag)
            bump.change("buildcfg.yaml", (*base, "commit"), component.commit, commit)
            if warning:
                bump.notes.append(warning)
            new_source = GoModuleSource(new_module, new_source_version, module.sum, modfile, source.patch_modules)
            self.trees.append(NewTree(dataclasses.replace(component, version=new_version, commit=commit, source=new_source), source_dir=module.dir))
            return
        if unchanged:
            return  # a tarball pin with the same version stays as it is
        assert isinstance(source, ArchiveSource)
        old_core = core(component.version)
        if not any(old_core in url for url in source.urls):
            raise FetchError(f"{name}: none of its source.urls holds its version {old_core}, so bump cannot derive the new ones", hint="edit them by hand")
        urls = tuple(url.replace(old_core, new_core) for url in source.urls)
        tree, archive = self._tarball(name, urls, bump)
        for index, (old_url, new_url) in enumerate(zip(source.urls, urls, strict=True)):
            bump.change("buildcfg.yaml", (*base, "source", "urls", index), old_url, new_url)
        bump.change("buildcfg.yaml", (*base, "source", "tree"), source.tree, tree)
        commit, warning = commit_for(component, new_version, new_version, None, "a tarball names no commit")
        bump.change("buildcfg.yaml", (*base, "commit"), component.commit, commit)
        if warning:
            bump.notes.append(warning)
        self.trees.append(NewTree(dataclasses.replace(component, version=new_version, commit=commit, source=ArchiveSource(urls, tree)), archive=archive))

    def _modfile(self, bump: Bump, component: Component, module: Module) -> str | None:
        """The new tree's module file: the pinned modfile while the tree has it; none (the entry removed) once the
        tree has only a go.mod, as moby v2 has. Adding one (back to moby 28's vendor.mod) is left to a person, with a note."""
        assert isinstance(component.source, GoModuleSource)
        modfile = component.source.modfile
        if modfile is None and not (module.dir / "go.mod").is_file():
            found = "vendor.mod" if (module.dir / "vendor.mod").is_file() else None
            bump.notes.append(f"{component.name}: {module.path}@{module.version} has no go.mod: add source.modfile: {found or 'its module file'} by hand")
            return found  # for checking the patches as the build will, once it is added
        if modfile is None or (module.dir / modfile).is_file():
            return modfile
        if (module.dir / "go.mod").is_file():
            bump.remove("buildcfg.yaml", ("components", component.name, "source", "modfile"), modfile)
            return None
        bump.notes.append(f"{component.name}: {module.path}@{module.version} has neither {modfile} nor a go.mod: set source.modfile by hand")
        return modfile

    def _rename_module(self, bump: Bump, component: Component, old: str, new: str) -> None:
        """Every value under the component's binaries that names the old module path (-X ldflags, import paths) names
        the new one; a list shared through an anchor changes once, at its anchor."""
        prefix: Path_ = ("components", component.name, "binaries")
        text = self._text("buildcfg.yaml")
        for path, value in written_once(text, prefix).items():
            bump.change("buildcfg.yaml", path, value, rewrite_module_path(value, old, new))
        if any(names_module(value, old) for value in borrowed(text, prefix).values()):
            bump.notes.append(f"{component.name}: its binaries name {old} through an anchor written outside them: rewrite it to {new} by hand")

    def _check_packages(self, bump: Bump, component: Component, module: Module) -> None:
        """Each binary's package is a folder of the new tree (packages move between majors)."""
        for binary in component.binaries:
            if not isinstance(binary, GoBinary):
                continue
            package = binary.package
            if package == "." or package.startswith("./"):
                folder = module.dir / package
            elif package == module.path or package.startswith(module.path + "/"):
                folder = module.dir / package[len(module.path) :].lstrip("/")
            else:
                continue
            if not folder.is_dir():
                where = f"{module.path}@{module.version}"
                bump.notes.append(f"{component.name}: {binary.name}'s package {package} is not in {where}: fix binaries.{binary.name}.package")

    def _tarball(self, name: str, urls: tuple[str, ...], bump: Bump) -> tuple[str, Path]:
        """The tree hash of the new tarball, from the first URL that gives one; the other URLs must give the same tree."""
        found: tuple[str, Path] | None = None
        failures = []
        for index, template in enumerate(urls):
            url = fetch.expand_url(template, self.settings)
            if url is None:
                failures.append(f"{template}: no Debian mirror in apt's sources (set DOCK32_DEBIAN_MIRROR)")
                continue
            destination = self.workdir / f"{name}-{index}{fetch.archive_suffix(url)}"
            try:
                fetch._download(url, destination, name)
                tree = tree_hash_of_archive(destination)
            except FetchError as exc:
                failures.append(str(exc))
                continue
            if found is None:
                found = (tree, destination)
                bump.sources.append(f"{name} tree {tree}: unpacked from {url}")
            elif tree != found[0]:
                failures.append(f"{url}: a different tree ({tree})")
        if found is None:
            raise FetchError(f"{name}: no URL gave the new tarball:\n  " + "\n  ".join(failures), hint="check the network and the URLs")
        bump.notes.extend(f"{name}: {failure}" for failure in failures)
        return found

    def check_patches(self, bump: Bump) -> None:
        for new in self.trees:
            component = new.component
            series = read_series(self.project / "patches" / component.name)
            if not series:
                continue
            if any(patch.applies_to(component.version) for patch in series):
                try:
                    tree = self._writable_tree(new)
                except Dock32Error as exc:
                    bump.patches.append(f"{component.name}: cannot prepare its {component.version} tree to check its patches: {exc}")
                    continue
            else:
                tree = self.workdir  # every patch is outside its versions=: check_series looks at no tree
            checks = check_series(series, tree, component.version)
            for check in checks:
                label = f"{component.name}/{check.patch.path.name}"
                text = {
                    "outside": f"no longer applied ({check.detail})",
                    "applies": f"applies to {component.version}",
                    "fails": f"DOES NOT APPLY to {component.version}: {check.detail}",
                    "upstream": f"already upstream in {component.version}, can be dropped ({check.detail})",
                }[check.status]
                bump.patches.append(f"{label}: {text}")
            source = component.source
            if isinstance(source, GoModuleSource) and source.patch_modules and all(check.status == "outside" for check in checks):
                bump.notes.append(
                    f"{component.name}: source.patch_modules ({', '.join(source.patch_modules)}) are copied for patches that no longer apply "
                    f"to {component.version}: drop them with those patches"
                )

    def _writable_tree(self, new: NewTree) -> Path:
        """A writable copy of the new pristine tree, prepared as the build prepares it (go.mod stub, patch_modules)."""
        tree = self.workdir / "trees" / new.component.name
        if new.archive is not None:
            unpack(new.archive, tree)
            return tree
        assert new.source_dir is not None
        prepare_tree(new.component.source, new.source_dir, tree, self.go.go, self.settings)
        return tree
