"""``otpflow`` as a person or a script meets it when something is wrong: every user mistake is
one line on stderr that names the problem and the fix, with an exit code, never a traceback.
Also the timeline's rendering and the error translation at the CLI's edge."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import yaml

from otpflow.cli import main as cli
from otpflow.cli.stack import free_port

from fakes import switched_flow
from harness import sms_step

OTPFLOW = shutil.which("otpflow", path=str(Path(sys.executable).parent)) or shutil.which("otpflow")
GOOD_FLOW = {"messages": [sms_step("919876543210")]}


def otpflow(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it; a narrow terminal, so a message that
    wrapped would show as two lines."""
    assert OTPFLOW, "the otpflow console script is not installed (pip install -e .)"
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTPFLOW_")}
    base |= {
        "OTPFLOW_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "OTPFLOW_SECRET": "cli-test-secret-value-0123456789abcdef",
        "OTPFLOW_API_KEYS": "a:b",
        "COLUMNS": "80",
        "NO_COLOR": "1",
    }
    return subprocess.run(
        [OTPFLOW, *args],
        env=base | (env or {}),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def url_of(client: redis.Redis) -> str:
    """The URL of the test Redis database a fixture's client uses."""
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs['db']}"


def one_error_line(result: subprocess.CompletedProcess[str], code: int, *names: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert result.stdout == ""
    return lines[0]


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(GOOD_FLOW))
    return path


# -- bad settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("OTPFLOW_SEND_BUDGET_SECONDS", "abc", "valid number"),
        ("OTPFLOW_SEND_BUDGET_SECONDS", "-1", "greater than 0"),
        ("OTPFLOW_LIMITS__RECIPIENT_FLOWS", "0", "greater than or equal to 1"),
        ("OTPFLOW_TASK_EVENTS", "maybe", "valid boolean"),
    ],
)
def test_a_bad_setting_is_named_by_its_variable(variable: str, value: str, says: str) -> None:
    result = otpflow("status", "some-id", env={variable: value})
    line = one_error_line(result, 2, variable, says, "environment or in .env")
    assert repr(value) in line


def test_a_bad_secret_setting_is_named_without_its_value() -> None:
    result = otpflow("status", "some-id", env={"OTPFLOW_API_KEYS": "no-colon-hunter2"})
    line = one_error_line(result, 2, "OTPFLOW_API_KEYS", "workspace:key pairs")
    assert "hunter2" not in line


@pytest.mark.parametrize(
    "command",
    [
        ["send", "FILE"],
        ["status", "some-id"],
        ["demo"],
        ["worker"],
        ["api", "--port", "0"],
    ],
)
def test_every_command_reports_bad_settings_in_one_line(
    command: list[str], flow_file: Path
) -> None:
    args = [str(flow_file) if part == "FILE" else part for part in command]
    result = otpflow(*args, env={"OTPFLOW_SEND_BUDGET_SECONDS": "soon"})
    one_error_line(result, 2, "OTPFLOW_SEND_BUDGET_SECONDS")


# -- bad URLs, Redis down ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("nonsense", "must start with redis://, rediss:// or unix://"),
        ("http://127.0.0.1:6379/0", "must start with redis://, rediss:// or unix://"),
        ("redis://127.0.0.1:port/0", "port"),
        ("redis://127.0.0.1:6379/zero", "database must be a number"),
    ],
)
@pytest.mark.parametrize("command", [["send", "FILE"], ["status", "some-id"], ["demo"]])
def test_a_bad_redis_url_is_one_line(
    url: str, says: str, command: list[str], flow_file: Path
) -> None:
    args = [str(flow_file) if part == "FILE" else part for part in command]
    result = otpflow(*args, env={"OTPFLOW_REDIS_URL": url})
    one_error_line(result, 2, f"OTPFLOW_REDIS_URL={url!r}", says, "redis://127.0.0.1:6379/0")


def test_a_bad_broker_url_is_one_line(flow_file: Path) -> None:
    result = otpflow("send", str(flow_file), env={"OTPFLOW_BROKER_URL": "rabbit-at-home"})
    one_error_line(result, 2, "OTPFLOW_BROKER_URL='rabbit-at-home'", "amqp://")


@pytest.mark.parametrize(
    "command", [["send", "FILE"], ["send", "FILE", "--no-wait"], ["status", "x"]]
)
def test_redis_down_is_one_clear_line(command: list[str], flow_file: Path) -> None:
    url = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    args = [str(flow_file) if part == "FILE" else part for part in command]
    result = otpflow(*args, env={"OTPFLOW_REDIS_URL": url})
    line = one_error_line(
        result,
        3,
        f"cannot reach Redis at {url.replace('hunter2', '***')}",
        "connection refused",
        "start redis-server or set OTPFLOW_REDIS_URL",
    )
    assert "hunter2" not in line


def test_a_broker_down_is_named_apart_from_redis(
    redis_client: redis.Redis, flow_file: Path
) -> None:
    broker = f"redis://127.0.0.1:{free_port()}/0"
    env = {"OTPFLOW_REDIS_URL": url_of(redis_client), "OTPFLOW_BROKER_URL": broker}
    result = otpflow("send", str(flow_file), "--no-wait", env=env)
    one_error_line(result, 3, f"cannot reach the task broker at {broker}", "OTPFLOW_BROKER_URL")
    assert redis_client.dbsize() == 0  # nothing stored: the flow was never accepted


# -- bad input -------------------------------------------------------------------------------


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    one_error_line(otpflow("send", str(missing)), 2, f"no file {missing}", "flow JSON file")


def test_a_directory_is_not_a_flow(tmp_path: Path) -> None:
    one_error_line(otpflow("send", str(tmp_path)), 2, f"{tmp_path} is a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_one_line(flow_file: Path) -> None:
    flow_file.chmod(0)
    one_error_line(otpflow("send", str(flow_file)), 2, "cannot read", "Permission denied")


def test_a_file_that_is_not_text_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_bytes(b"\xff\xfe{}")
    one_error_line(otpflow("send", str(path)), 2, f"cannot read {path}", "not UTF-8 text")


def test_invalid_json_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "flow.json"
    path.write_text('{"messages": [')
    one_error_line(otpflow("send", str(path)), 2, f"{path} is not valid JSON", "line 1")
    from_stdin = otpflow("send", "-", stdin="not json")
    one_error_line(from_stdin, 2, "standard input is not valid JSON")


def test_an_invalid_flow_names_every_bad_field_in_one_line(tmp_path: Path) -> None:
    flow = json.loads(json.dumps(GOOD_FLOW))
    flow["messages"][0]["timeout"] = 301
    flow["messages"][0]["data"]["recipient"] = "+91"
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(flow))
    line = one_error_line(
        otpflow("send", str(path)),
        2,
        "invalid flow",
        "messages.0.timeout",
        "messages.0.data.recipient",
    )
    # what is wanted, in words, not the regular expression
    assert "recipient: must be digits only, with the country code and no + or spaces" in line
    assert "pattern" not in line


def test_a_private_webhook_destination_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    flow = json.loads(json.dumps(GOOD_FLOW)) | {"webhookurl": "http://169.254.169.254/latest"}
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(flow))
    one_error_line(otpflow("send", str(path)), 2, "invalid flow", "webhookurl")


def test_an_unknown_request_id_is_one_line(redis_client: redis.Redis) -> None:
    result = otpflow("status", "no-such-flow", env={"OTPFLOW_REDIS_URL": url_of(redis_client)})
    one_error_line(result, 2, "no flow 'no-such-flow'", "OTPFLOW_REDIS_URL")


def test_bad_simulator_rules_are_one_line() -> None:
    one_error_line(otpflow("simulator", "--rules", "[{"), 2, "--rules is not valid JSON")


def test_help_documents_the_exit_codes() -> None:
    result = otpflow("send", "--help", env={"COLUMNS": "120"})
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for meaning in ("0 delivered or verified", "1 failed, cancelled", "2 invalid", "3 Redis"):
        assert meaning in text, meaning
    assert "--no-wait" in text and "--json" in text and "--timeout" in text


@pytest.mark.parametrize(
    "command", [[], ["send"], ["status"], ["worker"], ["api"], ["simulator"], ["demo"]]
)
def test_help_is_plain_text(command: list[str]) -> None:
    result = otpflow(*command, "--help", env={"COLUMNS": "120"})
    assert result.returncode == 0, result.stderr
    assert "`" not in result.stdout  # no reStructuredText (``code``) nor Markdown markup
    assert ":func:" not in result.stdout and ":mod:" not in result.stdout


def test_help_says_which_workspace_a_flow_goes_to() -> None:
    result = otpflow("send", "--help", env={"COLUMNS": "200"})
    line = next(line for line in result.stdout.splitlines() if "--workspace" in line)
    text = " ".join(result.stdout[result.stdout.index(line) :].split())
    for words in ("the workspace the flow belongs to", "x-workspace-id", "demo-key", "default"):
        assert words in text, words


def development_default_warnings(command: str) -> list[str]:
    """What ``otpflow <command>`` prints on stderr with no secret and no API keys set, up to
    the point where it would start serving (Celery and uvicorn are stubbed out)."""
    script = "\n".join(
        [
            "import sys, celery, uvicorn",
            "celery.Celery.worker_main = lambda self, argv=None: None",
            "uvicorn.run = lambda *args, **kwargs: None",
            "from otpflow.cli import main as cli",
            f"sys.exit(cli.main([{command!r}]))",
        ]
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTPFLOW_")}
    env |= {"OTPFLOW_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "COLUMNS": "80"}
    result = subprocess.run(
        [sys.executable, "-W", "default", "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stderr.splitlines()


def test_the_worker_warns_about_development_defaults_as_the_api_does() -> None:
    worker = development_default_warnings("worker")
    assert worker == development_default_warnings("api")
    assert len(worker) == 2, worker  # one line each, however narrow the terminal
    assert worker[0].startswith("WARNING OTPFLOW_SECRET is not set")
    assert worker[1].startswith("WARNING OTPFLOW_API_KEYS is not set")
    # not as Python warnings, with a file, a line number and a line of source
    assert not any("InsecureDefaultWarning" in line or ".py:" in line for line in worker)


def serve_api(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``otpflow api <args>`` up to where it would serve: uvicorn is stubbed out to print the
    host it was asked for on stdout."""
    script = "\n".join(
        [
            "import sys, uvicorn",
            "uvicorn.run = lambda app, host, **kwargs: print('serving on', host)",
            "from otpflow.cli import main as cli",
            f"sys.exit(cli.main(['api', *{list(args)!r}]))",
        ]
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTPFLOW_")}
    base |= {"OTPFLOW_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-c", script],
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
    )


OWN_SECRET = {"OTPFLOW_SECRET": "a-secret-of-this-deployment-0123456789"}
OWN_KEYS = {"OTPFLOW_API_KEYS": "acme:k-0123456789abcdef"}


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "api.example"])
@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "OTPFLOW_SECRET and OTPFLOW_API_KEYS"),
        (OWN_KEYS, "OTPFLOW_SECRET"),
        (OWN_SECRET, "OTPFLOW_API_KEYS"),
    ],
)
def test_the_api_refuses_a_reachable_address_with_development_secrets(
    host: str, env: dict[str, str], named: str
) -> None:
    result = serve_api("--host", host, env=env)
    line = one_error_line(result, 2, f"refusing to serve on {host}", named, "127.0.0.1")
    assert "--published-on" in line


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_the_api_serves_loopback_with_development_secrets_and_warns(host: str) -> None:
    result = serve_api("--host", host)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"serving on {host}\n"
    assert [line.split(" is not set")[0] for line in result.stderr.splitlines()] == [
        "WARNING OTPFLOW_SECRET",
        "WARNING OTPFLOW_API_KEYS",
    ]


def test_the_api_serves_a_reachable_address_with_its_own_secrets() -> None:
    result = serve_api("--host", "0.0.0.0", env=OWN_SECRET | OWN_KEYS)
    assert (result.returncode, result.stdout, result.stderr) == (0, "serving on 0.0.0.0\n", "")


def test_a_container_published_on_loopback_may_serve_development_secrets() -> None:
    result = serve_api("--host", "0.0.0.0", "--published-on", "127.0.0.1")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "serving on 0.0.0.0\n"
    assert len(result.stderr.splitlines()) == 2, "still warned about, as on loopback"


def test_a_container_published_beyond_the_host_refuses_development_secrets() -> None:
    result = serve_api("--host", "0.0.0.0", "--published-on", "0.0.0.0")
    one_error_line(result, 2, "refusing to serve on 0.0.0.0", "OTPFLOW_SECRET")


def test_the_compose_api_is_published_where_its_command_says() -> None:
    """The stack's API listens on 0.0.0.0 in its container; the address its port is
    published on (API_PUBLISH_ADDRESS, loopback by default) is what the check looks at."""
    compose = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())
    api = compose["services"]["api"]
    command = api["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    published = command[command.index("--published-on") + 1]
    assert published == "${API_PUBLISH_ADDRESS-127.0.0.1}"
    assert api["ports"] == [f"{published}:8000:8000"]


# -- the edge: which exceptions become one line -------------------------------------------------


def test_unexpected_errors_keep_their_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_: object) -> int:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(cli, "cmd_status", broken)
    with pytest.raises(ZeroDivisionError):
        cli.main(["status", "x"])


def test_exit_codes_follow_the_outcome() -> None:
    view = switched_flow()
    assert cli.outcome_code(view) == 0
    for status, code in (("verified", 0), ("failed", 1), ("cancelled", 1)):
        assert cli.outcome_code(dataclasses.replace(view, status=status)) == code
