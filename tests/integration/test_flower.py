"""Flower against live workers: it shows the workers, queues and the flows' tasks by name, asks
for credentials, refuses to act, and nothing it returns holds a recipient, an address or text.

`celery -A otpflow.worker flower` runs as a real process beside the system on its own Redis
databases (``observed_system``), read-only behind basic auth as docker-compose.yml runs it.
Flower only knows the events sent after it connects, and workers send task events only once
Flower has asked them to (OTPFLOW_TASK_EVENTS is off by default), so Flower is up and lists
a probe task of every worker before the first flow is sent.
"""

from __future__ import annotations

import ast
import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from otpflow.cli.stack import free_port
from otpflow.config.celery import ALL_QUEUES
from otpflow.flow.contract import NOTIFY_SWITCH, NOTIFY_TERMINAL, RELAY_DLR, SEND_STEP

from harness import System, recipient, sms_step, wait_for

pytestmark = pytest.mark.integration

AUTH = ("flower-user", f"flower-pass-{os.getpid()}")
OUR_TASKS = {SEND_STEP, NOTIFY_SWITCH, NOTIFY_TERMINAL, RELAY_DLR}
WORKER_NAMES = [f"worker{n}-{os.getpid()}@{socket.gethostname()}" for n in (1, 2)]


@dataclass
class Flower:
    """A Flower process and HTTP clients for it, with and without credentials."""

    process: subprocess.Popen[bytes]
    url: str
    http: httpx.Client = field(init=False)
    anonymous: httpx.Client = field(init=False)
    probe_ids: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.url, auth=AUTH, timeout=15)
        self.anonymous = httpx.Client(base_url=self.url, timeout=15)

    def get(self, path: str, **params: Any) -> httpx.Response:
        reply = self.http.get(path, params=params or None)
        assert reply.status_code == 200, f"GET {path}: {reply.status_code} {reply.text[:200]}"
        return reply

    def tasks(self) -> dict[str, dict[str, Any]]:
        return dict(self.get("/api/tasks").json())

    def stop(self) -> None:
        self.http.close()
        self.anonymous.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


def start_flower(system: System, log_dir: Path) -> Flower:
    port = free_port()
    env = system.stack.env()  # the workers' settings: same Redis, same broker
    env.update({"FLOWER_BASIC_AUTH": ":".join(AUTH), "FLOWER_READ_ONLY": "true"})
    env.pop("FLOWER_UNAUTHENTICATED_API", None)
    command = [sys.executable, "-m", "celery", "-A", "otpflow.worker", "flower"]
    with open(log_dir / "flower.log", "ab") as log:  # the process keeps its own handle
        process = subprocess.Popen(
            [*command, f"--port={port}", "--address=127.0.0.1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends all of it
        )
    flower = Flower(process, f"http://127.0.0.1:{port}")

    def answers() -> bool:
        assert process.poll() is None, f"flower exited with {process.returncode}"
        try:
            return flower.anonymous.get("/healthcheck").status_code == 200
        except httpx.HTTPError:
            return False

    def heard_every_worker() -> bool:
        alive = flower.get("/api/workers", status="true").json()
        return all(alive.get(name) for name in WORKER_NAMES)

    publish = system.client().celery.send_task

    def hears_tasks_of_every_worker() -> bool:
        # Workers send task events only once a monitor asks; Flower asks every 5 s. A probe
        # task (for no flow) shows which workers have been asked.
        flower.probe_ids.add(publish(NOTIFY_TERMINAL, args=[f"probe-{uuid.uuid4()}", 1]).id)
        probes = [task for task in flower.tasks().values() if "probe-" in (task["args"] or "")]
        return {task["worker"] for task in probes} >= set(WORKER_NAMES)

    try:
        system.wait(answers, timeout=30, what="Flower to answer")
        system.wait(heard_every_worker, timeout=30, what="Flower to hear every worker")
        wait_for(
            hears_tasks_of_every_worker,
            timeout=30,
            what="every worker to send task events to Flower",
            interval=0.5,
        )
    except BaseException:
        flower.stop()
        raise
    return flower


@pytest.fixture(scope="module")
def stack(
    observed_system: System, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[System, Flower]]:
    """Flower beside the system of its own Redis databases (3 and 4, see conftest.py)."""
    flower = start_flower(observed_system, tmp_path_factory.mktemp("flower"))
    yield observed_system, flower
    flower.stop()


@dataclass
class Run:
    """What the flows sent, and the task ids Flower lists for them."""

    request_ids: list[str]
    markers: list[str]  # recipients, addresses, texts, caller data: none may reach Flower
    canary: str  # an id-like marker put in a task's arguments on purpose
    task_ids: dict[tuple[str, str, int], str]  # (task name, flow or canary, step) -> task id


def marker(kind: str) -> str:
    return f"{kind}-marker-{uuid.uuid4().hex}"


def whatsapp_text_step(
    to: str, text: str, post_back_url: str, post_back_data: str
) -> dict[str, Any]:
    return {
        "channel": "whatsapp",
        "timeout": 30,
        "messageType": "custom",
        "data": {
            "recipient": to,
            "phone_id": "phone-1",
            "text": text,
            "post_back_url": post_back_url,
            "post_back_data": post_back_data,
        },
    }


def email_step(to: str, sender: str, subject: str, text: str) -> dict[str, Any]:
    return {
        "channel": "email",
        "timeout": 30,
        "messageType": "",
        "data": {"to": to, "from": sender, "subject": subject, "text": text},
    }


def flower_keys(tasks: dict[str, dict[str, Any]], state: str) -> dict[tuple[str, str, int], str]:
    """(name, first argument, second argument) -> task id, for the tasks in `state`."""
    found = {}
    for task_id, task in tasks.items():
        args = ast.literal_eval(task["args"] or "()")
        if task["state"] == state and len(args) >= 2:
            found[(task["name"], str(args[0]), int(args[1]))] = task_id
    return found


@pytest.fixture(scope="module")
def run(stack: tuple[System, Flower]) -> Run:
    system, flower = stack
    sms_to, wa_to, mail_sms_to = recipient(), recipient(), recipient()
    address, sender = f"{marker('to')}@example.com", f"{marker('from')}@example.com"
    sms_text, wa_text, mail_sms_text = marker("sms text"), marker("wa text"), marker("sms text")
    subject, mail_text = marker("subject"), marker("mail text")
    callback_data, post_back_data = marker("callback"), marker("postback")
    system.rules(
        {"channel": "sms", "recipient": sms_to, "action": "fail", "delay_ms": 100},
        {"channel": "sms", "recipient": mail_sms_to, "action": "fail", "delay_ms": 100},
        {"channel": "whatsapp", "recipient": wa_to, "action": "deliver", "delay_ms": 100},
        {"channel": "email", "recipient": address, "action": "deliver", "delay_ms": 100},
    )
    # SMS fails, WhatsApp is delivered: a switch webhook and a relayed delivery report
    whatsapp_flow = system.start(
        {
            "messages": [
                sms_step(sms_to, text=sms_text),
                whatsapp_text_step(
                    wa_to, wa_text, system.webhooks.at("/flower-relay"), post_back_data
                ),
            ],
            "webhookurl": system.webhooks.at("/flower-switch"),
            "callbackData": callback_data,
        }
    )
    # SMS fails, the email is delivered
    email_flow = system.start(
        {
            "messages": [
                sms_step(mail_sms_to, text=mail_sms_text),
                email_step(address, sender, subject, mail_text),
            ]
        }
    )
    for request_id in (whatsapp_flow, email_flow):
        view = system.wait_terminal(request_id, timeout=30)
        assert view.status == "delivered" and view.delivered_step == 1, view.status
    system.wait(lambda: system.webhooks.for_path("/flower-switch"), what="the switch webhook")
    system.wait(lambda: system.webhooks.for_path("/flower-relay"), what="the relayed report")

    # The positive control: an id-like value in a task's arguments, which Flower must show
    # wherever it shows arguments. A recipient in the arguments would show the same way.
    canary = marker("canary")
    system.client().celery.send_task(NOTIFY_TERMINAL, args=[canary, 1])

    # timeouts and switches are no tasks: the workers' timer loops decide them
    expected = {
        (SEND_STEP, whatsapp_flow, 0),
        (SEND_STEP, whatsapp_flow, 1),
        (NOTIFY_SWITCH, whatsapp_flow, 0),
        (RELAY_DLR, whatsapp_flow, 1),
        (SEND_STEP, email_flow, 0),
        (SEND_STEP, email_flow, 1),
        (NOTIFY_TERMINAL, canary, 1),
    }
    task_ids = system.wait(
        lambda: (found := flower_keys(flower.tasks(), "SUCCESS")).keys() >= expected and found,
        timeout=30,
        what="Flower to list every task of the flows as succeeded",
    )
    return Run(
        request_ids=[whatsapp_flow, email_flow],
        markers=[
            sms_to,
            wa_to,
            mail_sms_to,
            address,
            sender,
            sms_text,
            wa_text,
            mail_sms_text,
            subject,
            mail_text,
            callback_data,
            post_back_data,
        ],
        canary=canary,
        task_ids=task_ids,
    )


def all_pages(flower: Flower, run: Run) -> dict[str, str]:
    """Everything Flower serves about these workers and tasks: path -> body."""
    task_ids = list(flower.tasks())
    paths = [
        "/api/tasks",
        "/api/tasks?state=SUCCESS",
        "/api/tasks?state=RECEIVED",
        f"/api/tasks?taskname={SEND_STEP}",
        "/api/task/types",
        "/api/queues/length",
        "/api/workers",
        "/api/workers?refresh=1",
        "/",
        "/workers",
        "/tasks",
        "/broker",
        "/metrics",
        "/tasks/datatable?draw=1&start=0&length=1000&search%5Bvalue%5D="
        "&order%5B0%5D%5Bcolumn%5D=0&columns%5B0%5D%5Bdata%5D=name&order%5B0%5D%5Bdir%5D=asc",
    ]
    paths += [f"/api/tasks?search={request_id}" for request_id in run.request_ids]
    for name in WORKER_NAMES:
        # one worker's active, scheduled (countdown checks), reserved and revoked tasks
        paths += [f"/api/workers?workername={name}&refresh=1", f"/worker/{name}"]
    for task_id in task_ids:
        paths += [f"/api/task/info/{task_id}", f"/task/{task_id}"]
    return {path: flower.get(path).text for path in paths}


def test_flower_asks_for_credentials(stack: tuple[System, Flower], run: Run) -> None:
    _, flower = stack
    task_id = next(iter(run.task_ids.values()))
    paths = ["/api/tasks", "/api/workers", f"/api/task/info/{task_id}", "/api/queues/length"]
    paths += ["/", "/workers", "/tasks", f"/task/{task_id}", f"/worker/{WORKER_NAMES[0]}"]
    paths += ["/broker"]
    for path in paths:
        assert flower.anonymous.get(path).status_code == 401, path
        wrong = flower.anonymous.get(path, auth=(AUTH[0], "wrong-password"))
        assert wrong.status_code == 401, path
        assert flower.http.get(path).status_code == 200, path
    # the one page open to all: docker-compose.yml's healthcheck reads it
    assert flower.anonymous.get("/healthcheck").status_code == 200


def test_flower_refuses_to_act(stack: tuple[System, Flower], run: Run) -> None:
    _, flower = stack
    task_id = run.task_ids[(NOTIFY_TERMINAL, run.canary, 1)]
    assert flower.http.post(f"/api/task/revoke/{task_id}").status_code == 403
    apply = flower.http.post(f"/api/task/async-apply/{NOTIFY_TERMINAL}", json={"args": ["x", 1]})
    assert apply.status_code == 403
    grow = flower.http.post(f"/api/worker/pool/grow/{WORKER_NAMES[0]}", data={"n": "1"})
    assert grow.status_code == 403


def test_flows_tasks_are_listed_by_readable_name(stack: tuple[System, Flower], run: Run) -> None:
    _, flower = stack
    tasks = flower.tasks()
    for request_id in run.request_ids:
        mine = [task for task in tasks.values() if request_id in (task["args"] or "")]
        assert SEND_STEP in {task["name"] for task in mine}, request_id
    # A probe received before its worker was asked for events is known to Flower only from
    # its later events, which carry no name; every task sent after the warm-up has its name.
    named = {task["name"] for task_id, task in tasks.items() if task_id not in flower.probe_ids}
    assert named <= OUR_TASKS
    for (name, _, _), task_id in run.task_ids.items():
        info = flower.get(f"/api/task/info/{task_id}").json()
        assert info["name"] == name and info["uuid"] == task_id
        assert info["worker"] in WORKER_NAMES
    kinds = flower.get("/api/task/types").json()["task-types"]
    assert {SEND_STEP, NOTIFY_SWITCH, RELAY_DLR} <= set(kinds)


def test_flower_shows_the_live_workers_and_their_queues(stack: tuple[System, Flower]) -> None:
    _, flower = stack
    workers = flower.get("/api/workers", refresh="1").json()
    assert set(WORKER_NAMES) <= set(workers)
    for name in WORKER_NAMES:
        queues = {queue["name"] for queue in workers[name]["active_queues"]}
        assert queues == set(ALL_QUEUES), name
    alive = flower.get("/api/workers", status="1").json()
    assert all(alive[name] for name in WORKER_NAMES)
    lengths = flower.get("/api/queues/length").json()["active_queues"]
    assert {queue["name"] for queue in lengths} == set(ALL_QUEUES)


def test_nothing_flower_returns_holds_personal_data(stack: tuple[System, Flower], run: Run) -> None:
    _, flower = stack
    pages = all_pages(flower, run)
    leaks = [
        (path, found) for path, body in pages.items() for found in run.markers if found in body
    ]
    assert leaks == []

    # The scan reads what Flower shows of task arguments: the flows' ids are there, and so is
    # the canary put in one task's arguments, so a recipient in the arguments would be found.
    everything = "\n".join(pages.values())
    for request_id in run.request_ids:
        assert request_id in everything
    canary_task = run.task_ids[(NOTIFY_TERMINAL, run.canary, 1)]
    for path in (
        "/api/tasks",
        f"/api/task/info/{canary_task}",
        f"/task/{canary_task}",
        next(path for path in pages if path.startswith("/tasks/datatable")),
    ):
        assert run.canary in pages[path], path
