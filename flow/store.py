"""The flow store: flow state in Redis, changed only by atomic Lua transitions.

Each transition is one script run: it reads the state, asks the transition tables of
:mod:`otpflow.flow.states` whether the event is allowed, writes the new state, appends the
timeline event and maintains the deadline index, all at once. So concurrent or repeated tasks
and duplicate or late reports can never send a step twice or switch twice: whoever comes second
finds the state already moved and gets told so.

Time inside the scripts is Redis's own clock (``TIME``), one clock for every process.

Why one long module: every Redis write of flow state, limits and idempotency goes through
:class:`FlowStore` (so no other module can half-write a flow), and each of its methods is one
script call or one read, flat and short. The fraud guard's counts and blocks are its
:class:`~otpflow.flow.fraud_store.FraudStore`, ``FlowStore.fraud``; the counters Python adds
to, its :class:`~otpflow.flow.metrics.Metrics`, ``FlowStore.metrics``. What the transitions
answer is :mod:`.outcomes`; what a read shows is :mod:`.views`; the scripts themselves are
``lua/*.lua``.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Sequence
from typing import Any

from redis import Redis

from otpflow.config.routing import RoutingSettings
from otpflow.config.settings import Limits
from otpflow.flow import keys, scripts
from otpflow.flow.dashboard_store import DashboardStore
from otpflow.flow.fields import masked
from otpflow.flow.fraud import Screening
from otpflow.flow.fraud_store import FraudStore
from otpflow.flow.keyring import Keyring, KeyringMismatch
from otpflow.flow.metrics import Metrics
from otpflow.flow.models import FlowRequest
from otpflow.flow.outcomes import Claim, FlowDiscarded, Outcome, Recorded, Timer, text
from otpflow.flow.routing import NO_NOTE, RouteNote
from otpflow.flow.routing_store import RoutingStore
from otpflow.flow.states import DlrStatus, FlowStatus, Kind, StepStatus
from otpflow.flow.views import FlowView

# what one step's callback token can make the store keep: reports recorded (each at most one
# timeline event), and raw reports kept for relaying (each up to the API's body limit)
MAX_REPORTS_PER_STEP = 50
MAX_KEPT_REPORTS_PER_STEP = 10
# a step resent again and again is queued behind a backlog, not lost: resend it rarely
MAX_RESEND_WAIT_SECONDS = 120.0


def connect_redis(url: str) -> Redis:
    """The Redis client every OTPflow process uses: health-checked, with bounded timeouts."""
    return Redis.from_url(
        url,
        socket_connect_timeout=3,
        socket_timeout=5,
        health_check_interval=10,
        retry_on_timeout=True,
    )


def _task_member(task: str, args: list[Any]) -> str:
    return json.dumps([task, args], separators=(",", ":"))


class FlowStore:
    """Reads flows and applies transitions; one instance per process, built at the edge."""

    def __init__(
        self,
        redis: Redis,
        keyring: Keyring,
        ttl_seconds: int,
        grace_seconds: float = 10.0,
        routing: RoutingSettings | None = None,
    ) -> None:
        self.redis = redis
        # names recipients in key names, makes and checks codes (see flow.keyring)
        self.keyring = keyring
        self.ttl_seconds = ttl_seconds
        # how long a step may stay unclaimed, or a taken timer unfinished, before recovery
        self.grace_seconds = grace_seconds
        # routing's window and breaker thresholds are rendered into the scripts
        self._scripts = scripts.register(redis, routing)
        # the fraud guard's counts and blocks (the submit script screens with its arguments)
        self.fraud = FraudStore(redis, self._scripts)
        # adaptive routing's reads and preferred providers (the transitions keep its counts)
        self.routing = RoutingStore(redis)
        # the support dashboard's index of flows by recipient, its counts and its sessions
        self.dashboard = DashboardStore(redis, keyring, ttl_seconds)
        # the shared counters: what no transition counts (a refused send, a webhook's result)
        # is added here, and /metrics reads them all
        self.metrics = Metrics(redis)

    # -- writing -------------------------------------------------------------------------

    def create(
        self,
        workspace: str,
        request: FlowRequest,
        flow_id: str | None = None,
        active_keys: tuple[str, ...] = (),
        verify_budget_keys: tuple[str, ...] = (),
    ) -> str:
        """Store a new flow (all keys at once, each with its TTL) and return its id.

        ``active_keys`` are the per-recipient markers :meth:`submit` sets, released when the
        flow ends; ``verify_budget_keys`` the recipients' wrong-code budgets
        (:meth:`verify_budget_keys`). A flow with an ``otp`` block gets its code's HMAC, kept
        only for the code's ``ttl`` (the code itself is made from the flow's id when sent).
        """
        flow_id = flow_id or str(uuid.uuid4())
        self._scripts["create"](
            *self._creation(workspace, request, flow_id, active_keys, verify_budget_keys)
        )
        return flow_id

    def _creation(
        self,
        workspace: str,
        request: FlowRequest,
        flow_id: str,
        active_keys: tuple[str, ...],
        verify_budget_keys: tuple[str, ...],
        reordered: dict[str, Any] | None = None,
    ) -> tuple[list[str], list[str | int | float]]:
        """The keys and arguments of the create script (see :meth:`create`); ``reordered``:
        what moved the steps of a request with ``channelOrder: auto`` (on its timeline)."""
        wants = set(request.webhook_events) if request.webhook_url else set()
        fields: dict[str, str | int] = {
            "workspace": workspace,
            "status": FlowStatus.QUEUED.value,
            "current": 0,
            "steps": len(request.steps),
            "webhook": int("channel_switch" in wants),
            "terminal_hook": int("terminal" in wants),
            "enqueued": 0,
            "keyring": self.keyring.fingerprint,
        }
        if active_keys:
            fields["active"] = " ".join(active_keys)
        if verify_budget_keys and request.otp is not None:
            fields["verify_budget"] = " ".join(verify_budget_keys)
        if request.otp is not None:
            fields["otp_attempts_left"] = request.otp.max_attempts
        if reordered is not None:
            fields["reordered"] = json.dumps(reordered)
        fields.update(_step_fields(request))
        return (
            [
                keys.flow(flow_id),
                keys.events(flow_id),
                keys.timers(),
                keys.request(flow_id),
                keys.code(flow_id),
            ],
            [
                flow_id,
                self.ttl_seconds,
                self.grace_seconds,
                json.dumps(fields),
                json.dumps(request.to_json_dict()),
                len(request.steps),
                self._code_check(flow_id, request),
                request.otp.ttl if request.otp is not None else "",
            ],
        )

    def _same_keys(self, flow_id: str, fingerprint: str) -> None:
        if fingerprint != self.keyring.fingerprint:
            raise KeyringMismatch(
                f"flow {flow_id} was stored with another OTPFLOW_SECRET: every OTPflow process "
                "(API, workers, your app's producers) must share one"
            )

    def _code_check(self, flow_id: str, request: FlowRequest) -> str:
        """What Redis keeps of the flow's code: an HMAC to check typed codes against."""
        if request.otp is None:
            return ""
        return self.keyring.code_check(flow_id, self.keyring.code(flow_id, request.otp.length))

    def submit(
        self,
        flow_id: str,
        workspace: str,
        request: FlowRequest,
        recipients: dict[str, int],
        limits: Limits,
        active_ttl: int,
        screening: Screening | None = None,
        reordered: dict[str, Any] | None = None,
    ) -> Outcome:
        """Screen a new flow for fraud (see :mod:`.fraud`), check and take the abuse limits
        of a new flow for every recipient and, if they allow it, store the flow (as
        :meth:`create`): one script, one round trip.

        ``recipients`` maps each recipient (its limit key, see ``Payload.limit_key``; the
        same keys go to :meth:`release`) to the messages the flow may send it. Outcomes:
        ``ok`` (stored); ``rate_limited`` (too many flows) or ``message_limited`` (too many
        messages), detail: seconds to wait; ``too_many_messages`` (more than a window allows,
        however long one waits; detail: that maximum); ``active`` (detail: the flow already
        running for a recipient, unless the request allows concurrent flows);
        ``verify_blocked`` for a flow with a code to a recipient whose wrong codes spent their
        budget (detail: seconds to wait, see :meth:`verify`); ``fraud_refused`` (detail: the
        guard's reason). Nothing is stored unless ``ok``, or ``fraud_shadowed``: a flow stored
        as ``blocked`` that is never sent (the guard's shadow mode).
        """
        ordered = sorted(recipients)
        per_recipient = [self._limit_keys(workspace, address) for address in ordered]
        admit_args = [
            flow_id,
            limits.recipient_window_seconds,
            limits.recipient_flows,
            int(request.allow_concurrent),
            active_ttl,
            limits.recipient_messages,
            limits.verify_failures if request.otp is not None else 0,
            *(recipients[address] for address in ordered),
        ]
        active = () if request.allow_concurrent else tuple(group[1] for group in per_recipient)
        budgets = tuple(group[3] for group in per_recipient)
        create_keys, create_args = self._creation(
            workspace, request, flow_id, active, budgets, reordered
        )
        fraud_keys, fraud_args = self.fraud.arguments(workspace, flow_id, screening)
        raw = self._scripts["submit"](
            keys=[*create_keys, *fraud_keys, *(key for group in per_recipient for key in group)],
            args=[
                len(admit_args),
                len(fraud_keys),
                len(fraud_args),
                *admit_args,
                *fraud_args,
                *create_args,
            ],
        )
        kind, detail = (text(item) for item in raw)
        return Outcome(Kind(kind), detail)

    def _limit_keys(self, workspace: str, address: str) -> tuple[str, str, str, str]:
        """One recipient's rate, active flow, messages and wrong-code budget (admit.lua)."""
        recipient = self.keyring.recipient_id(address)
        return (
            keys.recipient_rate(workspace, recipient),
            keys.active(workspace, recipient),
            keys.recipient_messages(workspace, recipient),
            keys.verify_failures(workspace, recipient),
        )

    def count_request(self, workspace: str, second: int) -> int:
        """Count a request of a workspace in this second (of the clock's ``time()``): the
        second's count so far, for the per-workspace rate limit."""
        key = keys.workspace_rate(workspace, second)
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(key)
        pipe.expire(key, 2)
        count, _ = pipe.execute()
        return int(count)

    def reserve_idempotency(self, key: str, digest: str, seconds: int) -> str | None:
        """Reserve an Idempotency-Key (its Redis key, :func:`keys.idempotency`) for a request
        with this ``digest`` while it is sent: None if it was free (reserved now, for
        ``seconds``); otherwise what it holds, ``"<digest> <request id>"`` or
        ``"<digest> pending"``. :meth:`mark_enqueued` writes the request id."""
        if self.redis.set(key, f"{digest} pending", nx=True, ex=seconds):
            return None
        return text(self.redis.get(key) or b"")

    def keep_idempotency(self, key: str, value: str, seconds: int) -> None:
        """Write a reserved Idempotency-Key's answer for a flow stored without a
        confirmation (the fraud guard's shadow mode; :meth:`mark_enqueued` does it for the
        rest)."""
        self.redis.set(key, value, ex=seconds)

    def free_idempotency(self, key: str) -> None:
        """Give back a reserved Idempotency-Key whose request was not accepted."""
        self.redis.delete(key)

    def release(self, flow_id: str, workspace: str, addresses: set[str]) -> None:
        """Undo the limits :meth:`submit` took for a flow that was never accepted."""
        pipe = self.redis.pipeline(transaction=False)
        for recipient in map(self.keyring.recipient_id, addresses):
            pipe.zrem(keys.recipient_rate(workspace, recipient), flow_id)
            pipe.hdel(keys.recipient_messages(workspace, recipient), flow_id)
            active = keys.active(workspace, recipient)
            self._scripts["release_active"](keys=[active], args=[flow_id], client=pipe)
        pipe.execute()

    def verify(self, flow_id: str, code: str, limits: Limits) -> Outcome:
        """Check a code the person typed: ``verified`` (the flow ends), ``wrong`` (detail:
        attempts left), ``locked``, ``expired``, ``already_verified``, or ``blocked`` (detail:
        seconds to wait) while a recipient's wrong codes across flows are over
        ``limits.verify_failures``."""
        raw = self._call("verify_attempt", flow_id, limits.verify_failures)
        kind, detail, *fingerprint = (text(item) for item in raw)
        if kind != Kind.COMPARE:
            return Outcome(Kind(kind), detail)
        self._same_keys(flow_id, fingerprint[0])
        attempt = Outcome(Kind.COMPARE, detail)
        typed = self.keyring.code_check(flow_id, code)
        if hmac.compare_digest(attempt.detail.encode(), typed.encode()):
            return self._run("verified", flow_id)
        return self._run("wrong_code", flow_id, limits.verify_failure_window_seconds)

    def verify_budget_keys(self, workspace: str, addresses: set[str]) -> tuple[str, ...]:
        """The wrong-code budgets of these recipients (see :meth:`verify`)."""
        return tuple(
            keys.verify_failures(workspace, self.keyring.recipient_id(address))
            for address in sorted(addresses)
        )

    def wait_confirmed(self, flow_id: str, seconds: float) -> bool:
        """Wait up to ``seconds`` for the producer to confirm a flow whose first send came
        before the confirmation (see :meth:`claim`); True if it did."""
        return self.redis.blpop([keys.confirmed(flow_id)], timeout=seconds) is not None

    def mark_enqueued(self, flow_id: str, remember: tuple[str, str, int] | None = None) -> bool:
        """The producer saw step 0's task reach the broker: the flow is accepted.

        Until then no step can be claimed, and the timer loop discards a flow left unmarked
        (its producer answered 503), so a flow is sent if and only if its caller was told yes.
        ``remember`` is ``(key, value, seconds)``, an idempotency record written in the same
        script: a flow is accepted exactly when its key says so.

        A worker quicker than this confirmation waits for it and is woken by it. Returns
        whether one came and left unclaimed (it waited in vain): the producer publishes step
        0's send again. Raises :class:`FlowDiscarded` when the timer loop discarded the flow
        first.
        """
        key, value, seconds = remember or (None, "", 0)
        raw = self._call("confirm", flow_id, value, seconds, extra_keys=[key] if key else [])
        kind, early = (text(item) for item in raw[:2])
        if kind == Kind.MISSING:
            raise FlowDiscarded(flow_id)
        return early == "1"

    def delete(self, flow_id: str) -> None:
        """Remove a flow that could not be enqueued, so nothing stays half-stored."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(*keys.flow_keys(flow_id))
        pipe.zrem(keys.timers(), f"{flow_id}:0")
        pipe.execute()

    def _run(self, name: str, flow_id: str, *args: str | int | float) -> Outcome:
        kind, detail, *flag = (text(item) for item in self._call(name, flow_id, *args))
        return Outcome(Kind(kind), detail, notify=flag == ["1"])

    def _call(
        self, name: str, flow_id: str, *args: str | int | float, extra_keys: Sequence[str] = ()
    ) -> list[Any]:
        return self._scripts[name](
            keys=[
                keys.flow(flow_id),
                keys.events(flow_id),
                keys.timers(),
                keys.request(flow_id),
                keys.metrics(),
                keys.claimed_through(),
                keys.code(flow_id),
                keys.reports(flow_id),
                keys.confirmed(flow_id),
                *extra_keys,
            ],
            args=[flow_id, self.ttl_seconds, self.grace_seconds, *args],
        )

    def claim(
        self, flow_id: str, step: int, attempt: int, lease_seconds: float, waited: bool = False
    ) -> Claim:
        """Take a step for sending: ``claimed`` (detail: seconds since its first claim, with
        the request and the code to send) for exactly one caller per attempt;
        ``already_claimed``, ``not_current``, ``not_enqueued`` or ``flow_ended`` otherwise.

        ``not_enqueued``: the producer has not confirmed the flow yet. The caller may wait for
        the confirmation (:meth:`wait_confirmed`) and claim again with ``waited``; if that
        claim is ``not_enqueued`` too, the producer publishes the send again as it confirms."""
        raw = self._call("claim", flow_id, step, attempt, lease_seconds, int(waited))
        kind, detail = (text(item) for item in raw[:2])
        if kind != Kind.CLAIMED:
            return Claim(Kind(kind), detail)
        raw_request, code_check, fingerprint, route = (text(item) for item in raw[3:7])
        request = FlowRequest.parse(json.loads(raw_request)) if raw_request else None
        code = None
        if request is not None and request.otp is not None and code_check:
            self._same_keys(flow_id, fingerprint)
            # made again from the flow's id: Redis holds only its HMAC, while it may be used
            code = self.keyring.code(flow_id, request.otp.length)
        return Claim(Kind.CLAIMED, detail, request=request, code=code, route=tuple(route.split()))

    def accepted(
        self,
        flow_id: str,
        step: int,
        provider: str,
        message_id: str,
        timeout: int,
        note: RouteNote = NO_NOTE,
    ) -> Outcome:
        """The provider accepted the step (counted in ``provider_sends`` and the routing
        statistics; ``note``, why it was chosen, goes on the timeline: :meth:`Route.note`):
        ``sent`` with the timer's due time as detail; ``ignored`` if a report or a timer ended
        it meanwhile."""
        return self._run("accepted", flow_id, step, provider, message_id, timeout, *note)

    def attempt_failed(
        self,
        flow_id: str,
        step: int,
        provider: str,
        reason: str,
        attempt: int,
        failure: str = "error",
        note: RouteNote = NO_NOTE,
    ) -> Outcome:
        """Put a failed provider attempt on the timeline (the step goes on). ``failure`` is
        its routing counter: ``error``, ``timeout``, or ``rejected`` (this message's own
        fault: no mark against the provider's breaker)."""
        args = (step, provider, reason, attempt, failure, *note)
        return self._run("attempt_failed", flow_id, *args)

    def send_error(
        self,
        flow_id: str,
        step: int,
        provider: str,
        reason: str,
        failure: str = "",
        note: RouteNote = NO_NOTE,
    ) -> Outcome:
        """The step could not be sent: the flow moves on at once, ``switched`` (to the step in
        detail) or ``exhausted``; ``error`` if it had already moved on, ``ignored`` if the step
        had already ended. ``failure``: the routing counter of ``provider``'s attempt, if no
        :meth:`attempt_failed` counted it."""
        return self._run("send_error", flow_id, step, provider, reason, failure, *note)

    def record_dlr(
        self,
        flow_id: str,
        step: int,
        status: DlrStatus,
        provider: str,
        message_id: str | None = None,
        raw: Any = None,
        provider_status: str = "",
    ) -> Recorded:
        """Record a normalised report: ``delivered``; a failed report of the running step moves
        the flow on at once, ``switched`` (to the step in detail) or ``exhausted``; otherwise
        ``recorded``, ``late``, ``duplicate`` (this status of this provider message was
        recorded before) or ``too_many`` (the step's report budget is spent).

        ``raw``, the provider's own report, is kept in the same step if the step relays
        reports to its caller (bounded per step); ``kept`` is then its index for the relay
        task."""
        report = (
            json.dumps({"provider": provider, "status": status.value, "body": raw})
            if raw is not None
            else ""
        )
        answer = self._call(
            "dlr",
            flow_id,
            step,
            status.value,
            provider,
            " ".join((message_id or "").split())[:128],  # one line: it is a separator below
            MAX_REPORTS_PER_STEP,
            report,
            MAX_KEPT_REPORTS_PER_STEP,
            # the provider's own word, on the timeline (a status word: short, one line)
            " ".join(provider_status.split())[:32],
        )
        # a missing flow answers from the prelude, with two fields
        kind, detail, flag, kept = [*answer, "0", -1][:4]
        return Recorded(
            Kind(text(kind)),
            text(detail),
            notify=text(flag) == "1",
            kept=int(kept) if int(kept) >= 0 else None,
        )

    def report(self, flow_id: str, index: int) -> dict[str, Any] | None:
        raw = self.redis.lindex(keys.reports(flow_id), index)
        return json.loads(raw) if raw else None

    def check(self, flow_id: str, step: int) -> Outcome:
        """Decide a step whose timer is due: ``switched`` (to the step in detail) or
        ``exhausted`` when its deadline passed; ``resend`` (detail: how many times now) for a
        step whose send was lost (overtaken, see :func:`keys.claimed_through`), ``queued`` for
        one still waiting its turn; ``discarded`` for a flow never accepted; ``not_due``
        (seconds left) for a timer taken early; ``moved_on``, ``flow_ended`` or ``missing``:
        nothing to do.

        A resent step is looked at again after the grace period, doubling with every resend up
        to ``MAX_RESEND_WAIT_SECONDS``, so a backlog is fed a few duplicates, not one per look.
        """
        outcome = self._run("check", flow_id, step, MAX_RESEND_WAIT_SECONDS)
        if outcome.kind == Kind.MISSING:
            self.redis.zrem(keys.timers(), f"{flow_id}:{step}")
        return outcome

    def take_due(self, limit: int, lease_seconds: float) -> tuple[list[Timer], float | None]:
        """Take up to ``limit`` due timers, each leased for ``lease_seconds`` (by Redis time:
        no two callers get the same one); also the seconds until the next one is due (None
        when there is none)."""
        next_in, members = self._scripts["take_due"](
            keys=[keys.timers()], args=[limit, lease_seconds]
        )
        wait = float(next_in)
        return [Timer.parse(member.decode()) for member in members], (wait if wait >= 0 else None)

    def later(self, task: str, args: list[Any], delay: float, only_waiting: bool = False) -> None:
        """Have the workers' timer loop publish ``task(*args)`` ``delay`` seconds from now
        (``only_waiting``: move it only if it is still in the index)."""
        self._scripts["later"](
            keys=[keys.timers()],
            args=[_task_member(task, args), delay, self.ttl_seconds, "XX" if only_waiting else ""],
        )

    def forget(self, task: str, args: list[Any]) -> None:
        """Remove ``task(*args)`` from the timers index (it ran)."""
        self.redis.zrem(keys.timers(), _task_member(task, args))

    def timer_done(self, timer: Timer) -> None:
        """A taken task timer was published: remove it (a step timer's transition moves its
        own entry)."""
        self.redis.zrem(keys.timers(), timer.member)

    def cancel(self, flow_id: str) -> Outcome:
        return self._run("cancel", flow_id)

    def add_event(self, flow_id: str, event: dict[str, Any]) -> None:
        """Append an event that changes no state (webhook outcomes), if the flow still exists."""
        self._call("event", flow_id, json.dumps(event))

    # -- reading -------------------------------------------------------------------------

    def request_of(self, flow_id: str) -> FlowRequest | None:
        raw = self.redis.get(keys.request(flow_id))
        return FlowRequest.parse(json.loads(raw)) if raw else None

    def get(self, flow_id: str) -> FlowView | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.flow(flow_id))
        pipe.lrange(keys.events(flow_id), 0, -1)
        raw, events = pipe.execute()
        return FlowView.read(flow_id, raw, events) if raw else None


def _step_fields(request: FlowRequest) -> dict[str, str | int]:
    """The flow hash's fields of each step, as a new flow starts."""
    # each recipient parsed once, however many steps go to it
    shown = {
        address: (data.country, masked(address))
        for address, data in {step.data.address: step.data for step in request.steps}.items()
    }
    fields: dict[str, str | int] = {}
    for index, step in enumerate(request.steps):
        fields[f"s{index}:channel"] = step.channel
        fields[f"s{index}:message_type"] = step.message_type
        fields[f"s{index}:timeout"] = step.timeout
        fields[f"s{index}:status"] = StepStatus.PENDING.value
        fields[f"s{index}:attempts"] = 0
        # routing counts by country; the dashboard's lists show the masked recipient
        fields[f"s{index}:country"], fields[f"s{index}:to"] = shown[step.data.address]
        if getattr(step.data, "post_back_url", None):
            fields[f"s{index}:relay"] = 1
    return fields
