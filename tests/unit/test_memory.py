"""How many tasks run at once and the compiles' Go settings, for a machine's memory (core.memory)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from dock32.core import memory
from dock32.core.arch import Arch
from dock32.core.errors import ConfigError
from dock32.core.memory import GiB, MiB, choose, read_machine
from dock32.model.config import load_config, load_packages, load_toolchains
from dock32.model.project import Project
from dock32.model.settings import settings_from_env
from dock32.pipeline.plan import memory_kinds, plan_build
from dock32.pipeline.tasks import doit_config, memory_choice, reporter_for

ROOT = Path(__file__).resolve().parents[2]
# Docker's build on the i386 box: Go built from source, small tasks, eleven Go binaries with dockerd, tini, six packages.
DOCKER = (memory.TOOLCHAIN, memory.SMALL, memory.DOCKERD, *[memory.GO] * 9, memory.C, *[memory.PACKAGING] * 6)
# The same on amd64, which fetches the released Go.
CROSS = (memory.SMALL, *DOCKER[1:])


@pytest.fixture
def project(tmp_path: Path) -> Project:
    config = load_config(ROOT / "buildcfg.yaml")
    settings = settings_from_env(ROOT, env={"DOCK32_CACHE_DIR": str(tmp_path / "cache"), "DOCK32_BUILD_DIR": str(tmp_path / "build")})
    return Project.of(config, load_toolchains(ROOT / "toolchains"), settings, load_packages(ROOT / "packaging" / "packages.yaml", config))


def test_the_release_s_tasks_are_dockerd_s_link_go_builds_tini_and_packages(project: Project) -> None:
    kinds = memory_kinds(project)
    assert kinds.count(memory.DOCKERD) == 1
    assert kinds.count(memory.C) == 1  # docker-init
    assert kinds.count(memory.PACKAGING) == len(project.packages) == 6
    assert kinds.count(memory.GO) == sum(len(c.binaries) for c in project.config.components) - 2
    # Go is built from source only where no toolchain module is pinned for the machine: linux-386.
    assert memory.TOOLCHAIN in memory_kinds(project, Arch.I386)
    assert memory.TOOLCHAIN not in memory_kinds(project, Arch.AMD64)


def test_dockerd_s_link_is_the_largest_go_task_and_a_64_bit_go_needs_more() -> None:
    for bits in (32, 64):
        go_tasks = {kind: memory.task_peak(kind, 1, bits) for kind in (memory.DOCKERD, memory.GO)}
        assert max(go_tasks, key=lambda kind: go_tasks[kind]) == memory.DOCKERD
    assert memory.task_peak(memory.DOCKERD, 1, 32) == memory.DOCKERD_LINK + memory.GO_COMMAND
    # With two compiles at once, the compiles are what a Go build needs most.
    assert memory.task_peak(memory.DOCKERD, 2, 32) == 2 * memory.COMPILE_PROCESS + memory.GO_COMMAND
    assert memory.task_peak(memory.DOCKERD, 1, 64) > memory.task_peak(memory.DOCKERD, 1, 32)
    assert memory.task_peak(memory.PACKAGING, 1, 64) == memory.task_peak(memory.PACKAGING, 1, 32)  # xz is no Go program
    with pytest.raises(ValueError, match="unknown task kind 'linker'"):
        memory.task_peak("linker", 1, 32)


def test_a_24_gib_box_runs_two_tasks_at_go_s_defaults() -> None:
    choice = choose(22 * GiB, None, 0, 2, DOCKER, bits=64)
    assert (choice.jobs, choice.go_procs, choice.gogc, choice.gomemlimit, choice.shortfall) == (2, 2, None, None, None)
    assert choice.line().startswith("dock32: 2 tasks at a time, go -p 2: 22.0 GiB available (MemAvailable), about ")


def test_one_core_runs_one_task_and_one_compile_whatever_the_memory() -> None:
    choice = choose(24 * GiB, None, 0, 1, DOCKER)
    assert (choice.jobs, choice.go_procs, choice.gogc, choice.gomemlimit, choice.shortfall) == (1, 1, None, None, None)
    assert choice.line().startswith("dock32: 1 task at a time, go -p 1: 24.0 GiB available")


def test_a_2_gib_box_runs_two_tasks_but_a_64_bit_go_one() -> None:
    # What a 2 GiB i386 box has free after booting: two tasks with two compiles each.
    choice = choose(1700 * MiB, None, 0, 2, DOCKER)
    assert (choice.jobs, choice.go_procs, choice.gogc, choice.gomemlimit, choice.shortfall) == (2, 2, None, None, None)
    assert "1.7 GiB available (MemAvailable), about 1.6 GiB needed" in choice.line()
    # A 64-bit go command, whose compiles and links are larger, runs one.
    wider = choose(2 * GiB, None, 0, 2, CROSS, bits=64)
    assert (wider.jobs, wider.go_procs) == (1, 2) and "2 at once would need about 2.2 GiB" in wider.line()


def test_a_1_gib_box_runs_one_task_at_go_s_defaults_and_does_not_warn() -> None:
    # The i386 box of tests/e2e/test_native_i386.py: the whole build fits in 1 GiB (it peaked at 432 MiB there).
    choice = choose(1 * GiB, None, 0, 2, DOCKER)
    assert (choice.jobs, choice.go_procs, choice.gogc, choice.gomemlimit, choice.shortfall) == (1, 2, None, None, None)
    assert choice.line() == "dock32: 1 task at a time, go -p 2: 1.0 GiB available (MemAvailable); 2 at once would need about 1.6 GiB"
    # A 64-bit go there runs one compile at a time, still at Go's defaults.
    cross = choose(1 * GiB, None, 0, 2, CROSS, bits=64)
    assert (cross.jobs, cross.go_procs, cross.gogc, cross.shortfall) == (1, 1, None, None)
    assert cross.line().endswith("1.0 GiB available (MemAvailable); 2 compiles at once would need about 1.2 GiB")


def test_a_640_mib_box_runs_one_compile_under_a_memory_limit_and_warns_with_the_fix() -> None:
    choice = choose(640 * MiB, None, 0, 2, DOCKER)
    assert (choice.jobs, choice.go_procs, choice.gogc) == (1, 1, memory.TIGHT_GOGC)
    assert choice.gomemlimit == 640 - memory.DOCK32_ITSELF - memory.GO_COMMAND
    assert choice.line() == (
        "dock32: 1 task at a time, go -p 1, GOGC=50, GOMEMLIMIT=440MiB: 640 MiB available (MemAvailable); building Go alone needs about 800 MiB"
    )
    assert choice.shortfall is not None
    assert choice.shortfall.startswith("building Go needs about 800 MiB and 640 MiB is available, so the build may be killed for memory: add memory")
    assert choice.shortfall.endswith("or build on a larger machine and install the .debs here")
    # Swap carries a peak that lasts seconds: the warning says so instead.
    swapped = choose(640 * MiB, None, 1 * GiB, 2, DOCKER)
    assert swapped.shortfall is not None and "the peak will go to swap (1.0 GiB free), slower but it should finish" in swapped.shortfall
    # Where Go is not built here, the same box fits, one compile at a time under GC settings.
    assert choose(640 * MiB, None, 0, 2, CROSS).shortfall is None


def test_a_512_mib_box_gets_the_smallest_settings_and_the_warning() -> None:
    choice = choose(512 * MiB, None, 0, 2, DOCKER)
    assert (choice.jobs, choice.go_procs, choice.gogc, choice.gomemlimit) == (1, 1, memory.TIGHT_GOGC, 512 - 200)
    assert choice.shortfall is not None and "512 MiB is available" in choice.shortfall
    assert choose(200 * MiB, None, 0, 2, DOCKER).gomemlimit == memory.MIN_GOMEMLIMIT


def test_a_container_s_cgroup_limit_wins_over_the_host_s_free_memory() -> None:
    choice = choose(22 * GiB, 640 * MiB, 0, 2, DOCKER)
    assert (choice.jobs, choice.go_procs, choice.gogc, choice.gomemlimit) == (1, 1, 50, 440)
    assert "640 MiB available (cgroup limit)" in choice.line()
    assert choice.shortfall is not None and "(cgroup limit)" in choice.shortfall and "raise the container's memory limit" in choice.shortfall
    # The host's swap does not help a cgroup with no room: the fix stays the limit.
    assert "swap" not in (choose(22 * GiB, 640 * MiB, 8 * GiB, 2, DOCKER).shortfall or "")
    # A limit above what is free is no limit.
    assert "(MemAvailable)" in choose(1 * GiB, 4 * GiB, 0, 2, DOCKER).line()


def test_memory_from_the_user_is_planned_for_when_it_is_the_lowest() -> None:
    # What a bench round or a shared machine asks for: a 1 GiB box's settings on a 24 GiB machine.
    choice = choose(22 * GiB, None, 8 * GiB, 2, CROSS, bits=64, memory=1 * GiB)
    assert (choice.jobs, choice.go_procs, choice.gogc, choice.gomemlimit, choice.shortfall) == (1, 1, None, None, None)
    assert "1.0 GiB available (--memory)" in choice.line()
    # Less than a build needs: its fix is the option, and the machine's swap is no answer to what the user asked for.
    small = choose(22 * GiB, None, 8 * GiB, 2, DOCKER, memory=640 * MiB)
    assert small.shortfall is not None and "raise --memory (DOCK32_MEMORY)" in small.shortfall and "swap" not in small.shortfall
    # More than the machine or its cgroup has changes nothing.
    assert choose(2 * GiB, None, 0, 2, DOCKER, memory=8 * GiB) == choose(2 * GiB, None, 0, 2, DOCKER)
    assert "(cgroup limit)" in choose(22 * GiB, 1 * GiB, 0, 2, DOCKER, memory=2 * GiB).line()


def test_dock32_memory_is_read_and_checked() -> None:
    for text, expected in (("1GiB", GiB), ("1G", GiB), ("800MiB", 800 * MiB), ("800m", 800 * MiB), ("1.5GiB", 1536 * MiB), ("", None)):
        assert settings_from_env(ROOT, env={"DOCK32_MEMORY": text}).memory == expected, text
    for bad in ("12", "lots", "-1G", "1T"):
        with pytest.raises(ConfigError, match=f"DOCK32_MEMORY='{bad}': expected a size of 64MiB or more"):
            settings_from_env(ROOT, env={"DOCK32_MEMORY": bad})


def test_jobs_from_the_user_win_and_warn_when_they_may_not_fit() -> None:
    assert choose(24 * GiB, None, 0, 2, DOCKER, jobs=1).jobs == 1
    more = choose(24 * GiB, None, 0, 2, DOCKER, jobs=4)
    assert (more.jobs, more.go_procs, more.shortfall) == (4, 2, None)
    assert "--jobs 4" in more.line()
    squeezed = choose(1200 * MiB, None, 0, 2, DOCKER, jobs=2)
    assert squeezed.jobs == 2 and squeezed.gogc == memory.TIGHT_GOGC
    assert squeezed.shortfall is not None and squeezed.shortfall.startswith("2 tasks at once (--jobs 2) needs about")


def test_go_settings_join_the_flags_the_env_has_and_never_the_command_line(project: Project) -> None:
    choice = choose(640 * MiB, None, 0, 2, DOCKER)
    env = choice.go_env({"GOFLAGS": "-mod=mod", "GOARCH": "386"})
    assert env == {"GOFLAGS": "-mod=mod -p=1", "GOARCH": "386", "GOGC": "50", "GOMEMLIMIT": "440MiB"}
    assert choose(24 * GiB, None, 0, 2, DOCKER).go_env({}) == {"GOFLAGS": "-p=2"}
    # The compile's up-to-date check (its command line, its inputs) is the same whatever was chosen: no rebuild.
    plain = {t.task_id: t for t in plan_build(project)}
    tight = {t.task_id: t for t in plan_build(project, choice)}
    assert plain["compile:dockerd"].config == tight["compile:dockerd"].config
    assert "-p=1" not in str(tight["compile:dockerd"].config) and "GOMEMLIMIT" not in str(tight["compile:dockerd"].config)
    action = tight["compile:dockerd"].action
    assert isinstance(action, functools.partial) and action.keywords == {"memory": choice}


def test_dock32_jobs_is_read_and_checked(tmp_path: Path) -> None:
    assert settings_from_env(ROOT, env={"DOCK32_JOBS": "3"}).jobs == 3
    assert settings_from_env(ROOT, env={}).jobs is None
    for bad in ("0", "two", "-1"):
        with pytest.raises(ConfigError, match=f"DOCK32_JOBS='{bad}': expected a number of tasks, 1 or more"):
            settings_from_env(ROOT, env={"DOCK32_JOBS": bad})


def test_doit_runs_as_many_tasks_as_the_reporter_chose(project: Project, tmp_path: Path) -> None:
    fixed = Project.of(project.config, project.toolchains, settings_from_env(ROOT, env={"DOCK32_BUILD_DIR": str(tmp_path / "b"), "DOCK32_JOBS": "1"}))
    with open(os.devnull, "w") as devnull:
        reporter = reporter_for(fixed, devnull)
    # Not the whole choice: MemAvailable, in its reason, moves between two reads on a busy machine.
    chosen = memory_choice(fixed)
    assert reporter.memory is not None and chosen is not None
    assert (reporter.memory.jobs, reporter.memory.go_procs) == (chosen.jobs, chosen.go_procs) == (1, chosen.go_procs)
    assert doit_config(fixed.settings, fixed.config.target, reporter)["num_process"] == 1
    assert reporter.progress.place is not None and reporter.progress.place.notes == (reporter.memory.line(),)


# --- reading a machine: this one, and cgroup trees laid out as the kernel does -----------------------------


def test_this_machine_is_read() -> None:
    machine = read_machine()
    total = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
    assert 0 < machine.available <= total
    assert machine.cgroup_limit is None or machine.cgroup_limit > 0
    assert machine.cpus == len(os.sched_getaffinity(0))
    assert machine.bits in (32, 64)


def _proc(tmp_path: Path, cgroup: str, available_kb: int = 2_000_000, swap_kb: int = 0) -> Path:
    proc = tmp_path / "proc"
    (proc / "self").mkdir(parents=True)
    meminfo = f"MemTotal: 4000000 kB\nMemFree: 100000 kB\nMemAvailable: {available_kb} kB\nSwapFree: {swap_kb} kB\n"
    (proc / "meminfo").write_text(meminfo)
    (proc / "self" / "cgroup").write_text(cgroup)
    return proc


def test_a_cgroup_v2_limit_is_the_lowest_of_the_process_s_cgroup_and_those_above(tmp_path: Path) -> None:
    cgroups = tmp_path / "cgroup"
    (cgroups / "box" / "build").mkdir(parents=True)
    (cgroups / "box" / "memory.max").write_text(f"{1 * GiB}\n")
    (cgroups / "box" / "build" / "memory.max").write_text("max\n")
    machine = read_machine(_proc(tmp_path, "0::/box/build\n", swap_kb=1024), cgroups)
    assert (machine.available, machine.cgroup_limit, machine.swap_free) == (2_000_000 * 1024, 1 * GiB, 1024 * 1024)
    (cgroups / "box" / "memory.max").write_text("max\n")
    assert read_machine(_proc(tmp_path / "2", "0::/box/build\n"), cgroups).cgroup_limit is None


def test_a_cgroup_v1_limit_and_v1_s_no_limit(tmp_path: Path) -> None:
    cgroups = tmp_path / "cgroup"
    (cgroups / "memory" / "docker" / "abc").mkdir(parents=True)
    (cgroups / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # v1's "none"
    (cgroups / "memory" / "docker" / "abc" / "memory.limit_in_bytes").write_text(f"{768 * MiB}\n")
    # A hybrid machine: cgroup2 mounted at unified/ without controllers, v1's memory controller beside it.
    (cgroups / "unified").mkdir()
    membership = "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/docker/abc\n"
    assert read_machine(_proc(tmp_path, membership), cgroups).cgroup_limit == 768 * MiB
    (cgroups / "memory" / "docker" / "abc" / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert read_machine(_proc(tmp_path / "2", membership), cgroups).cgroup_limit is None


def test_no_cgroup_file_means_no_limit(tmp_path: Path) -> None:
    proc = _proc(tmp_path, "")
    (proc / "self" / "cgroup").unlink()
    assert read_machine(proc, tmp_path / "none").cgroup_limit is None
