"""The i686 guest as data: which scenarios run there (none that needs x86_64, SCTP only where its module loads), the
QEMU command that boots it, its marked console, and the wire format of its command agent."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dock32.checks.scenarios import agent
from dock32.checks.scenarios.catalogue import SCENARIOS
from dock32.checks.scenarios.guest import KVM, TCG, GuestDisk, marked, offers_of, qemu_command
from dock32.checks.scenarios.kernel import AMD64_IMAGE_RUN_REFUSED, AMD64_INDEX_PULL_REFUSED, RESTART_AFTER_REBOOT
from dock32.checks.scenarios.machine import Need
from dock32.checks.scenarios.scenario import select
from dock32.model.flavour import Flavour

AMD64_HOST = frozenset({Need.X86_64_KERNEL, Need.AMD64_BUSYBOX, Need.SCTP})
I386_HOST = frozenset({Need.NO_X86_64_KERNEL})
GUEST_SCENARIOS = SCENARIOS
NATIVE32 = Flavour()
REFUSALS = (AMD64_INDEX_PULL_REFUSED.name, AMD64_IMAGE_RUN_REFUSED.name)
NO_X86_64 = "this kernel does not run x86_64 programs"
# Under systemd, as the guest is: the sysvinit scenarios skip there, whatever the kernel.
SYSVINIT_ONLY = {s.name: Need.SYSVINIT.value for s in SCENARIOS if Need.SYSVINIT in s.needs}


def skips(offers: frozenset[Need], flavour: Flavour = NATIVE32) -> dict[str, str]:
    return {s.name: s.skip for s in select(GUEST_SCENARIOS, flavour, offers) if s.skip is not None}


# --- which scenarios run in the guest ---------------------------------------------------------------------------


def test_the_i686_guest_runs_no_x86_64_scenario_and_the_32_bit_ones() -> None:
    offers = offers_of("i686", sctp_loads=True, host=AMD64_HOST)
    assert Need.X86_64_KERNEL not in offers and {Need.NO_X86_64_KERNEL, Need.REBOOT, Need.SYSTEMD, Need.SCTP} <= offers
    needs_x86_64 = {s.name: NO_X86_64 for s in SCENARIOS if Need.X86_64_KERNEL in s.needs}
    assert {"amd64 image under the default seccomp profile", "amd64-only image pulled without --platform"} <= set(needs_x86_64)
    assert skips(offers) == {**SYSVINIT_ONLY, **needs_x86_64}


def test_sctp_runs_in_the_guest_only_where_its_module_loads() -> None:
    without = offers_of("i686", sctp_loads=False, host=AMD64_HOST)
    assert Need.SCTP not in without
    assert skips(without)["SCTP port published"] == "no SCTP in this kernel"
    # Whatever this build machine's own kernel has: the guest's kernel decides.
    assert Need.SCTP in offers_of("i686", sctp_loads=True, host=frozenset())


def test_the_amd64_image_for_the_refusals_comes_from_an_amd64_build_machine() -> None:
    on_i386_host = skips(offers_of("i686", sctp_loads=True, host=I386_HOST))
    assert all(on_i386_host[name] == Need.AMD64_BUSYBOX.value for name in REFUSALS)
    assert not set(REFUSALS) & set(skips(offers_of("i686", sctp_loads=True, host=AMD64_HOST)))


def test_a_guest_on_an_x86_64_kernel_would_run_the_x86_64_scenarios_and_not_the_refusals() -> None:
    offers = offers_of("x86_64", sctp_loads=True, host=AMD64_HOST)
    assert skips(offers) == {**SYSVINIT_ONLY, **dict.fromkeys(REFUSALS, "this kernel runs x86_64 programs")}


def test_an_unknown_guest_kernel_is_refused_by_name() -> None:
    with pytest.raises(Exception, match="'aarch64'"):
        offers_of("aarch64", sctp_loads=False, host=AMD64_HOST)


def test_machines_that_do_not_reboot_skip_the_kernel_scenarios_with_their_reasons() -> None:
    """The root booted under systemd in a container of this amd64 machine."""
    assert skips(AMD64_HOST | {Need.SYSTEMD, Need.SYSTEM_CONTAINERD}) == {
        **SYSVINIT_ONLY,
        **dict.fromkeys(REFUSALS, "this kernel runs x86_64 programs"),
        RESTART_AFTER_REBOOT.name: "only a booted kernel reboots",
    }


def test_the_kernel_scenarios_go_after_the_amd64_ones_and_before_the_purge() -> None:
    names = [s.name for s in GUEST_SCENARIOS]
    after_amd64 = names.index("amd64-only image pulled without --platform") + 1
    assert tuple(names[after_amd64 : after_amd64 + 2]) == REFUSALS
    assert names[-2:] == [RESTART_AFTER_REBOOT.name, "upgrade with a --restart=always container, then purge"]


# --- the QEMU command and the console -------------------------------------------------------------------------------


DISK = GuestDisk(Path("/run/x/vmlinuz-6.1.0-50-686-pae"), Path("/run/x/initrd.img-6.1.0-50-686-pae"), Path("/run/a,b/disk.ext4"))


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_tcg_emulates_a_32_bit_only_cpu_with_pae() -> None:
    command = qemu_command("qemu-system-i386", DISK, Path("/run/x/console.log"), TCG, 41234)
    assert (option(command, "-accel"), option(command, "-cpu")) == ("tcg", "coreduo")
    assert (option(command, "-m"), option(command, "-smp")) == ("2048", "2")
    assert "root=/dev/vda" in option(command, "-append") and "console=ttyS0" in option(command, "-append")
    assert option(command, "-kernel") == str(DISK.kernel)


def test_kvm_gives_the_guest_this_machines_cpu() -> None:
    command = qemu_command("qemu-system-i386", DISK, Path("/run/x/console.log"), KVM, 41234)
    assert (option(command, "-accel"), option(command, "-cpu")) == ("kvm", "host")


def test_the_agent_port_is_forwarded_from_loopback_only_and_the_guest_reaches_nothing() -> None:
    netdev = option(qemu_command("qemu-system-i386", DISK, Path("/c"), TCG, 41234), "-netdev")
    assert "restrict=on" in netdev.split(",")
    assert "hostfwd=tcp:127.0.0.1:41234-10.0.2.15:7000" in netdev.split(",")


def test_a_comma_in_a_path_is_doubled_in_qemus_option_lists() -> None:
    command = qemu_command("qemu-system-i386", DISK, Path("/run/c,d/console.log"), TCG, 1)
    assert option(command, "-drive").startswith("file=/run/a,,b/disk.ext4,if=virtio,")
    assert option(command, "-chardev") == "file,id=console,path=/run/c,,d/console.log"


def test_console_lines_are_marked_and_terminal_control_is_dropped() -> None:
    console = "\x1bc\x1b[2JSeaBIOS\r\n[    0.000000] Linux version 6.1.0-50-686-pae\r\n\x1b(B\x00\r\nlogin: \x07"
    assert marked(console) == "console| SeaBIOS\nconsole| [    0.000000] Linux version 6.1.0-50-686-pae\nconsole| \nconsole| login: \n"


# --- the agent's wire format ------------------------------------------------------------------------------------------


def reader(data: bytes):  # type: ignore[no-untyped-def]
    return io.BytesIO(data).read


def test_messages_carry_any_bytes_and_come_back_whole() -> None:
    fields = [b"run", b"\0\xff\n", b"", bytes(range(256)) * 100]
    assert agent.unpack(reader(agent.pack(fields))) == fields


def test_a_message_cut_short_is_a_protocol_error() -> None:
    message = agent.pack([b"read", b"/etc/hostname"])
    for size in (0, 3, 6, len(message) - 1):
        with pytest.raises(agent.ProtocolError, match="ends early"):
            agent.unpack(reader(message[:size]))


def test_an_oversized_field_is_refused_before_it_is_read() -> None:
    with pytest.raises(agent.ProtocolError, match="at most"):
        agent.unpack(reader(b"\0\0\0\1\x7f\xff\xff\xff"))


def test_a_run_request_is_what_the_agent_runs() -> None:
    request = agent.unpack(reader(agent.run_request(["sh", "-c", "cat; echo é"], {"PATH": "/bin", "A": "b=c"}, b"in", 300)))
    seen = []

    def run(argv: list[str], env: dict[str, str], stdin: bytes, timeout: int) -> tuple[int, bytes, bytes]:
        seen.append((argv, env, stdin, timeout))
        return 3, b"out", b"err"

    reply = agent.answer(request, run)
    assert seen == [(["sh", "-c", "cat; echo é"], {"PATH": "/bin", "A": "b=c"}, b"in", 300)]
    assert agent.exit_of(reply) == (3, b"out", b"err")


def test_read_and_write_requests_on_files(tmp_path: Path) -> None:
    target = tmp_path / "new" / "folder" / "file"
    data = bytes(range(256))
    assert agent.data_of(agent.answer(agent.unpack(reader(agent.write_request(str(target), data, 0o750))), agent.execute)) == b""
    assert target.read_bytes() == data and target.stat().st_mode & 0o777 == 0o750
    assert agent.data_of(agent.answer(agent.unpack(reader(agent.read_request(str(target)))), agent.execute)) == data


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ([b"read", b"relative/path"], "not an absolute path"),
        ([b"read", b"/a/../etc/shadow"], "not an absolute path"),
        ([b"read", b"/no/such/file"], "No such file"),
        ([b"format", b"/"], "a request the agent does not know"),
        ([b"run", b"300"], "a request the agent does not know"),
        ([], "an empty request"),
    ],
)
def test_what_the_agent_cannot_do_is_an_error_answer(request_fields: list[bytes], message: str) -> None:
    with pytest.raises(agent.ProtocolError, match=message):
        agent.data_of(agent.answer(request_fields, agent.execute))


def test_an_exit_answer_is_not_data_and_the_other_way_round() -> None:
    with pytest.raises(agent.ProtocolError, match="does not know"):
        agent.data_of([b"exit", b"0", b"", b""])
    with pytest.raises(agent.ProtocolError, match="does not know"):
        agent.exit_of([b"data", b""])
