"""`dock32 bump`: the resolved bump checked, reported and written, and the command line."""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

from dock32.bump.check import check_project
from dock32.bump.enginetags import (
    BETA_PREFIX,
    MOBY_V2,
)
from dock32.bump.resolver import Bump, Resolver
from dock32.bump.rules import refusal
from dock32.core import atomic
from dock32.core.errors import ConfigError
from dock32.model.config import load_config, load_packages, load_toolchains
from dock32.model.settings import Settings, settings_from_env
from dock32.model.yamledit import apply_changes, comment_lines_naming

FILES = ("buildcfg.yaml", "toolchains/go.yaml")


def new_texts(project: Path, bump: Bump) -> dict[str, str]:
    """The rewritten files (only those that change), checked by loading them the way a build does."""
    texts: dict[str, str] = {}
    for file in FILES:
        old = (project / file).read_text(encoding="utf-8")
        text = bump.texts.get(file, old)
        changes = [c for c in bump.changes if c.file == file]
        if changes:
            text = apply_changes(text, changes)
        if text != old:
            texts[file] = text
    return texts


def stale_comments(bump: Bump, old_version: str, texts: dict[str, str]) -> None:
    """Comments that still name the old release: prose a bump does not rewrite, named for a person to."""
    text = texts.get("buildcfg.yaml")
    if text is None or old_version == bump.version:
        return
    lines = comment_lines_naming(text, old_version)
    if lines:
        where = f"line {lines[0]}" if len(lines) == 1 else f"lines {', '.join(map(str, lines))}"
        bump.notes.append(f"buildcfg.yaml: the comments at {where} still name {old_version}")


def validate(project: Path, texts: dict[str, str], workdir: Path) -> None:
    """Load the new files (in a scratch copy) with the same loaders a build uses."""
    scratch = workdir / "validate"
    (scratch / "toolchains").mkdir(parents=True, exist_ok=True)
    for item in (project / "toolchains").iterdir():
        if item.is_file():
            shutil.copyfile(item, scratch / "toolchains" / item.name)
    shutil.copyfile(project / "buildcfg.yaml", scratch / "buildcfg.yaml")
    for file, text in texts.items():
        (scratch / file).write_text(text, encoding="utf-8")
    try:
        config = load_config(scratch / "buildcfg.yaml")
        load_toolchains(scratch / "toolchains")
        packages = project / "packaging" / "packages.yaml"
        if packages.is_file():
            load_packages(packages, config)
    except ConfigError as exc:
        raise ConfigError(f"the rewritten files do not load: {exc.message}", hint="nothing was written; this is a bug in dock32 bump") from None


def report(bump: Bump, old_version: str, texts: dict[str, str], dry_run: bool, go: str = "") -> str:
    lines = [f"dock32 bump: Docker {old_version} -> {bump.version}"]
    if go:
        lines.append(f"go command: {go}")
    lines.append("versions found:")
    lines.extend(f"  {source}" for source in bump.sources)
    if bump.changes or texts:
        lines.append("changes:" if not dry_run else "changes (dry run, not written):")
        for file in FILES:
            for change in (c for c in bump.changes if c.file == file):
                lines.append(f"  {file}: {change.describe()}")
            if file in bump.texts:
                lines.append(f"  {file}: a new Go toolchain pin appended")
    else:
        lines.append("no changes: the pins already match this release")
    if bump.patches:
        lines.append("patches:")
        lines.extend(f"  {entry}" for entry in bump.patches)
    if bump.notes:
        lines.append("look at by hand:")
        lines.extend(f"  {note}" for note in bump.notes)
    if texts:
        lines.append("dry run: nothing written" if dry_run else f"wrote {', '.join(sorted(texts))}")
    return "\n".join(lines) + "\n"


def bump_project(
    project: Path, version: str, *, dry_run: bool = False, force: bool = False, settings: Settings | None = None, engine_version: str | None = None
) -> str:
    """Resolve, rewrite (unless dry_run) and return the report. Raises ConfigError for a refused or malformed version."""
    version = version.removeprefix("v")
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise ConfigError(f"bump: {version!r} is not a Docker release like 28.5.2")
    refused = refusal(version)
    if refused and not force:
        raise ConfigError(f"bump {version}: {refused}; use --force to try anyway")
    config = load_config(project / "buildcfg.yaml")
    settings = settings or settings_from_env(project)
    with tempfile.TemporaryDirectory(prefix="dock32-bump.") as scratch:
        workdir = Path(scratch)
        resolver = Resolver(project, config, settings, workdir)
        bump = resolver.run(version, engine_version)
        if refused:
            bump.notes.insert(0, f"{version} is {refused.removeprefix('refused: ')}; going on because of --force")
        texts = new_texts(project, bump)
        validate(project, texts, workdir)
        stale_comments(bump, config.release.version, texts)
        resolver.check_patches(bump)
        if not dry_run:
            for file, text in texts.items():
                atomic.write_text(project / file, text)
            load_config(project / "buildcfg.yaml")
        return report(bump, config.release.version, texts, dry_run, resolver.go_description)


def command(project: Path, argv: list[str], settings: Settings | None = None) -> int:
    """`dock32 bump VERSION [--dry-run] [--force] [--engine-version V]`, `dock32 bump --check`."""
    parser = argparse.ArgumentParser(prog="dock32 bump", description="Move the pins to another Docker release, resolved through GOPROXY.")
    parser.add_argument("--dry-run", action="store_true", help="print the changes it would make; write nothing")
    parser.add_argument("--force", action="store_true", help="bump even to a release listed as broken on 386")
    parser.add_argument("--check", action="store_true", help="list the newer releases the module proxy can give, with their engine tags; change nothing")
    parser.add_argument(
        "--engine-version", metavar="TAG",
        help=f"29.x: the {MOBY_V2} tag ({BETA_PREFIX}N) that is the release, where bump cannot tell it from the evidence",
    )
    parser.add_argument("version", nargs="?", help="the Docker release, like 29.8.1")
    args = parser.parse_args(argv)
    if args.check:
        if args.version or args.dry_run or args.force or args.engine_version:
            parser.error("--check takes no version and no other option")
        sys.stdout.write(check_project(project, settings))
        return 0
    if not args.version:
        parser.error("the Docker release to bump to is missing (or --check)")
    sys.stdout.write(bump_project(project, args.version, dry_run=args.dry_run, force=args.force, settings=settings, engine_version=args.engine_version))
    return 0
