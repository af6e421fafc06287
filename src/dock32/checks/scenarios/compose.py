"""The compose plugin's scenario: two services up, talking by name, and down again."""

from __future__ import annotations

from dock32.checks.scenarios.check import expect_equal, retry
from dock32.checks.scenarios.scenario import Context, Scenario
from dock32.checks.scenarios.testimage import I386_IMAGE, WEB_PAGE


def compose(context: Context) -> str:
    sandbox = context.sandbox
    sandbox.write_file(
        "/srv/compose/compose.yaml",
        (
            "services:\n"
            f"  web:\n    image: {I386_IMAGE}\n    pull_policy: never\n    command: [httpd, -f, -p, '80', -h, /www]\n"
            f"  client:\n    image: {I386_IMAGE}\n    pull_policy: never\n    command: [sleep, '300']\n    depends_on: [web]\n"
        ).encode(),
    )
    command = ["compose", "--project-directory", "/srv/compose", "--project-name", "dock32"]
    sandbox.docker(*command, "up", "--detach")
    try:
        running = sandbox.docker(*command, "ps", "--services", "--status", "running").stdout.split()
        expect_equal(sorted(running), ["client", "web"], "running services")
        out = retry(lambda: sandbox.docker(*command, "exec", "-T", "client", "wget", "-qO-", "http://web/").stdout)
        expect_equal(out, WEB_PAGE, "http://web/ from the client service")
    finally:
        sandbox.docker(*command, "down", "--timeout", "1")
    left = sandbox.docker("ps", "--all", "--quiet", "--filter", "label=com.docker.compose.project=dock32").stdout.split()
    expect_equal(left, [], "containers left after down")
    return "two services up, one reaches the other by name, down removes both"


COMPOSE = Scenario("docker compose up and down", compose)
