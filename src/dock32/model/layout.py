"""Where every output of a build lives, in one place, so tasks and tests agree on paths."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    build_dir: Path  # build/
    target: str  # e.g. native32-i386
    project_dir: Path
    dist_root: Path  # dist/

    @classmethod
    def of(cls, build_dir: Path, dist_root: Path, target: str, project_dir: Path) -> Layout:
        return cls(build_dir=build_dir, target=target, project_dir=project_dir, dist_root=dist_root)

    @property
    def dist_dir(self) -> Path:
        return self.dist_root / self.target

    @property
    def target_dir(self) -> Path:
        return self.build_dir / self.target

    @property
    def toolchain_record(self) -> Path:
        """Per target: the C toolchain (and its flags) depends on the strategy."""
        return self.target_dir / "toolchain.json"

    def source_record(self, component: str) -> Path:
        return self.build_dir / "sources" / f"{component}.json"

    def source_tree(self, component: str) -> Path:
        return self.target_dir / "src" / component

    def prepared_stamp(self, component: str) -> Path:
        return self.source_tree(component) / ".dock32-prepared"

    def cmake_dir(self, component: str) -> Path:
        return self.target_dir / "cmake" / component

    def binary(self, name: str) -> Path:
        return self.target_dir / "bin" / name

    @property
    def manifest(self) -> Path:
        return self.target_dir / "manifest.json"

    @property
    def logs_dir(self) -> Path:
        return self.build_dir / "logs" / self.target

    def log(self, task: str) -> Path:
        return self.logs_dir / f"{task}.log"

    def patch_dir(self, component: str) -> Path:
        return self.project_dir / "patches" / component

    def patch_files(self, component: str) -> list[Path]:
        """The series file and every patch file in the folder: a new or edited one re-prepares the tree."""
        folder = self.patch_dir(component)
        return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
