"""A flow's timeline told in words, one line per event, for the terminal (``otpflow status``)
and the support dashboard alike. Each line is a few pieces of text, each with a tone (a style
name the terminal uses as it is, and the dashboard as a CSS class); no event holds a
recipient, a text or a code, so neither does a line."""

from __future__ import annotations

from typing import Any

from otpflow.flow.routing import BreakerState

# (text, tone): tone "" is plain
Piece = tuple[str, str]

# a delivery report's status, by how good it is; anything else is bad news
REPORT_TONE = {"delivered": "green", "read": "green", "sent": "cyan", "accepted": "cyan"}


def report_tone(status: str) -> str:
    return REPORT_TONE.get(status, "red")


def relative(ts: float | None, start: float) -> str:
    """The time since ``start`` in at most 7 characters: ``+1.23s``, ``+32.5s``, ``+126s``,
    ``+16m40s``, ``+2h05m``."""
    return "-" if ts is None else "+" + duration(ts - start)


def duration(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 9.995:
        return f"{seconds:.2f}s"
    if seconds < 99.95:
        return f"{seconds:.1f}s"
    if seconds < 999.5:
        return f"{seconds:.0f}s"
    minutes = round(seconds) // 60
    if minutes < 60:
        return f"{minutes}m{round(seconds) % 60:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def describe(event: dict[str, Any]) -> list[Piece]:
    """One line for one timeline event."""
    kind = event.get("type")
    step = event.get("step")
    at = (f"step {step} {event.get('channel', '')}: ", "")
    if kind == "flow_created":
        return [(_created(event), "")]
    if kind == "sent":
        return [at, (f"accepted by {event.get('provider')}", "cyan"), _route(event)]
    if kind == "attempt_failed":
        return [
            at,
            (f"attempt {event.get('attempt')} via {event.get('provider')} failed", "yellow"),
            (f" ({event.get('reason')})", ""),
            _route(event),
        ]
    if kind == "send_error":
        return [at, ("could not be sent", "red"), (f" ({event.get('reason')})", "")]
    if kind == "dlr":
        return [at, *_report(event)]
    if kind == "channel_switch":
        return [
            ("switch", "bold yellow"),
            (
                f" {event.get('channel')} -> {event.get('to_channel')} "
                f"(step {step} {event.get('status')}: {event.get('reason')})",
                "",
            ),
        ]
    if kind == "webhook":
        return _webhook(event)
    if kind == "relay":
        text = f"step {step}: {event.get('status')} report relayed to the post_back_url: "
        return [(text + str(event.get("result")), "")]
    if kind == "flow_delivered":
        late = " (late report)" if event.get("late") else ""
        return [(f"flow delivered by step {step}", "bold green"), (late, "")]
    if kind == "flow_failed":
        return [("flow failed", "bold red"), (f": {event.get('reason')}", "")]
    if kind == "flow_cancelled":
        return [("flow cancelled", "yellow")]
    if kind == "flow_verified":
        return [("code verified: flow verified", "bold green")]
    if kind in ("fraud_blocked", "fraud_monitored"):
        return _fraud(event)
    if kind == "feedback":
        return [("the caller reported the code verified", "green")]
    if kind == "verify_failed":
        return [(f"wrong code entered ({event.get('attempts_left')} attempts left)", "yellow")]
    return [(str(kind), "")]


def _report(event: dict[str, Any]) -> list[Piece]:
    status = str(event.get("status"))
    raw = event.get("provider_status")
    said = f" (the provider said {raw!r})" if raw and raw != status else ""
    late = " (late, after the step had ended)" if event.get("late") else ""
    return [("delivery report ", ""), (status, f"bold {report_tone(status)}"), (said + late, "")]


def _fraud(event: dict[str, Any]) -> list[Piece]:
    blocked = event.get("type") == "fraud_blocked"
    said = "blocked by the fraud guard" if blocked else "fraud guard would block"
    detail = f": {event.get('reason')} ({event.get('country')})"
    return [(said, "bold red" if blocked else "yellow"), (detail, "")]


def plain(event: dict[str, Any]) -> str:
    return "".join(text for text, _ in describe(event))


def _created(event: dict[str, Any]) -> str:
    reordered = event.get("reordered")
    if not reordered:
        return f"flow created with {event.get('steps')} steps"
    caller = " -> ".join(reordered.get("caller_order", []))
    return (
        f"flow created with {event.get('steps')} steps, reordered by measured merit "
        f"(channelOrder auto; the caller's order: {caller})"
    )


def _route(event: dict[str, Any]) -> Piece:
    """Why the provider was chosen, in a few words: " (adaptive for IN: rank 1, score 0.93)"."""
    route = event.get("route")
    if not route:
        return ("", "")
    if route.get("only"):
        return (" (the channel's only provider)", "")
    if route.get("kept"):
        return (f" (the step's provider {route.get('rank')})", "")
    if route.get("mode") != "adaptive":
        return (f" ({route.get('mode')} order: {route.get('rank')})", "")
    said = f"rank {route.get('rank')}, score {route.get('score')}"
    if route.get("explored"):
        said += ", exploring"
    if route.get("probe"):
        said += ", probing its breaker"
    if route.get("breaker") == BreakerState.OPEN:
        said += ", breaker open"
    return (f" (adaptive for {route.get('country')}: {said})", "")


def _webhook(event: dict[str, Any]) -> list[Piece]:
    name = (
        f"switch webhook for step {event.get('step')}: "
        if event.get("event") == "channel_switch"
        else f"{event.get('event')} webhook: "
    )
    result = str(event.get("result"))
    attempt = event.get("attempt")
    if result == "delivered":
        code = f" (HTTP {event['code']})" if event.get("code") else ""
        return [(name, ""), ("delivered", "green"), (code, "")]
    if result == "retrying":
        return [
            (name, ""),
            (f"attempt {attempt} failed", "yellow"),
            (f" ({event.get('reason')}), retrying", ""),
        ]
    if result == "gave_up":
        return [
            (name, ""),
            (f"gave up after attempt {attempt}", "red"),
            (f" ({event.get('reason')})", ""),
        ]
    return [(name, ""), (result, "red"), (f" ({event.get('reason')})", "")]
