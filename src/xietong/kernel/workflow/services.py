"""Service tasks: a registered connector or a webhook, called by a worker, with retries.

Reaching a service task schedules a job (``service:<token>``). A worker reads what to
call, makes the call *outside* any transaction (a slow system must not hold database
locks), then applies the result in one unit of work: the JSON result's keys (or only
``outputs``) become process variables and the token moves on.

A failed call is retried with exponential backoff ``retries`` times (so ``retries + 1``
attempts in all); then an incident is opened and the token waits until an
administrator calls ``retry_incident``, which starts a fresh round of attempts.

Connectors are functions registered by name (``register_connector``), so apps can offer
their systems to processes without the kernel importing them. Webhooks are ``POST``
requests with a JSON body ``{instance_id, business_key, node_id, token_id, variables}``, signed
per Standard Webhooks like the kernel's event webhooks (``webhook-id`` stays the same
across retries of one call, so the receiver can deduplicate). The signing secret is
one per receiving origin (scheme, host, port), derived from the platform's encryption
key (``webhook_secret``; ``xietong process webhook-secret URL`` prints it for the
receiver): nothing secret is written into a process definition.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select

from xietong.kernel import clock
from xietong.kernel.access import WORKER, Actor, authorize
from xietong.kernel.bus import ScheduledJob, backoff, complete_job, register_job_handler
from xietong.kernel.bus import schedule_job as schedule
from xietong.kernel.bus.delivery import sign_headers
from xietong.kernel.bus.webhooks import SECRET_PREFIX
from xietong.kernel.context import Context
from xietong.kernel.errors import Conflict, NotFound
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow import runtime
from xietong.kernel.workflow._run import JOB_SERVICE, Run
from xietong.kernel.workflow.definitions import graph_by_id
from xietong.kernel.workflow.events import MODULE, IncidentOpened
from xietong.kernel.workflow.model import ServiceCall
from xietong.kernel.workflow.store import WfIncident, WfInstance, WfToken, WfVariable
from xietong.kernel.workflow.timers import load_waiting
from xietong.kernel.workflow.views import IncidentView

Connector = Callable[[Context, dict[str, Any]], dict[str, Any] | None]
_CONNECTORS: dict[str, Connector] = {}
SUSPENDED_RECHECK_S = 60


def register_connector(name: str, connector: Connector) -> None:
    """Offer ``connector(ctx, request) -> result dict`` to service tasks as ``name``."""
    _CONNECTORS[name] = connector


def _default_client() -> httpx.Client:
    return httpx.Client(timeout=10.0)


_client_factory: Callable[[], httpx.Client] = _default_client


def use_http_client(factory: Callable[[], httpx.Client]) -> Callable[[], httpx.Client]:
    """Install how webhooks get their HTTP client (tests pass a mock transport)."""
    global _client_factory
    previous, _client_factory = _client_factory, factory
    return previous


_SECRET_LABEL = b"xietong.workflow.webhook-secret\x00"


def webhook_secret(ctx: Context, url: str) -> str:
    """The Standard Webhooks secret (``whsec_…``) service calls to ``url``'s origin use."""
    parsed = httpx.URL(url)
    origin = f"{parsed.scheme}://{parsed.host}:{parsed.port or ''}".lower()
    digest = hmac.new(ctx.keys.encryption, _SECRET_LABEL + origin.encode(), hashlib.sha256)
    return SECRET_PREFIX + base64.b64encode(digest.digest()).decode("ascii")


def _post(ctx: Context, url: str, request: dict[str, Any], message_id: str) -> Any:
    body = json.dumps(request, ensure_ascii=False, separators=(",", ":"), default=str)
    headers = {
        "content-type": "application/json",
        **sign_headers(webhook_secret(ctx, url), message_id, body),
    }
    with _client_factory() as client:
        response = client.post(url, content=body.encode("utf-8"), headers=headers)
        response.raise_for_status()
        return response.json() if response.content else {}


def _invoke(ctx: Context, call: ServiceCall, request: dict[str, Any]) -> dict[str, Any]:
    if call.connector:
        connector = _CONNECTORS.get(call.connector)
        if connector is None:
            raise LookupError(f"no connector registered as {call.connector!r}")
        result: Any = connector(ctx, request)
    elif call.url:
        message_id = f"xietong-wf-{request['instance_id']}-{request['token_id']}"
        result = _post(ctx, call.url, request, message_id)
    else:
        raise LookupError("the service task names neither a connector nor a URL")
    if result is None:
        return {}
    return result if isinstance(result, dict) else {"result": result}


def call_service(ctx: Context, job: ScheduledJob) -> None:
    payload = job.payload
    with ctx.db.read() as session:
        token = session.get(WfToken, int(payload["token"]))
        instance = session.get(WfInstance, int(payload["instance"]))
        if token is None or instance is None or token.status != "waiting":
            return
        suspended = instance.status == "suspended"
        graph = graph_by_id(ctx.db, session, instance.definition_id)
        node = graph.nodes[payload["node"]]
        rows = session.execute(
            select(WfVariable.name, WfVariable.value).where(WfVariable.instance_id == instance.id)
        )
        variables = {name: value for name, value in rows}
        request = {
            "instance_id": instance.id,
            "business_key": instance.business_key,
            "node_id": node.id,
            "token_id": token.id,
            "variables": variables,
        }
    if suspended:
        # 挂起: call later; moving the job makes the runner's own completion void
        with ctx.db.write_session() as writer, writer.begin():
            due = clock.now() + timedelta(seconds=SUSPENDED_RECHECK_S)
            schedule(writer, JOB_SERVICE, due_at=due, key=job.key, payload=payload)
        return
    assert node.service is not None
    try:
        result, error = _invoke(ctx, node.service, request), None
    except Exception as exc:  # any failure of the remote side counts as one attempt
        result, error = {}, f"{type(exc).__name__}: {exc}"[:2000]
    _apply(ctx, job, node.service, result, error)


def _apply(
    ctx: Context, job: ScheduledJob, call: ServiceCall, result: dict[str, Any], error: str | None
) -> None:
    with UnitOfWork(ctx, WORKER) as uow:
        run = Run(uow)
        loaded = load_waiting(run, job.payload)
        if loaded is None:
            return
        state, token = loaded
        subject = f"process_instance:{state.row.id}"
        if error is None:
            outputs = {k: v for k, v in result.items() if not call.outputs or k in call.outputs}
            run.set_variables(state, outputs)
            run.history(state, "service.completed", node_id=token.node_id, token=token)
            runtime.drive(run, state, runtime.leave(run, state, token))
            uow.record("workflow.service.complete", subject, {"node": job.payload["node"]})
            complete_job(uow.session, job)
        else:
            attempts = int(token.state.get("attempts", 0)) + 1
            token.state = {**token.state, "attempts": attempts, "last_error": error}
            details = {"attempt": attempts, "error": error}
            if attempts <= call.retries:
                run.history(
                    state, "service.failed", node_id=token.node_id, token=token, details=details
                )
                schedule(
                    uow.session,
                    JOB_SERVICE,
                    due_at=clock.now() + backoff(attempts),
                    key=job.key,
                    payload=job.payload,
                )
                uow.record("workflow.service.retry", subject, details)
            else:
                incident = WfIncident(
                    instance_id=state.row.id,
                    token_id=token.id,
                    node_id=token.node_id,
                    error=error,
                    attempts=attempts,
                    created_at=clock.now(),
                )
                uow.session.add(incident)
                uow.session.flush()
                run.history(
                    state, "incident.opened", node_id=token.node_id, token=token, details=details
                )
                uow.emit(
                    IncidentOpened(incident.id, state.row.id, token.node_id, error), module=MODULE
                )
                uow.record("workflow.incident.open", subject, {**details, "id": incident.id})
                complete_job(uow.session, job)
        run.finish()
        uow.commit()


def retry_incident(ctx: Context, actor: Actor, incident_id: int) -> IncidentView:
    """Resolve an incident by calling the service again (a fresh round of attempts)."""
    authorize(actor, "workflow.incident.manage")
    with UnitOfWork(ctx, actor) as uow:
        run = Run(uow)
        found = uow.session.get(WfIncident, incident_id)
        if found is None:
            raise NotFound.of("故障", "Incident", incident_id)
        state = run.instance(found.instance_id)
        incident = uow.session.get(WfIncident, incident_id, populate_existing=True)
        assert incident is not None
        if incident.resolved_at is not None:
            raise Conflict(
                "故障已处理", "The incident is already resolved", code="already_resolved"
            )
        run.require_active(state)
        token = uow.session.get(WfToken, incident.token_id)
        if token is None or token.status != "waiting":
            raise Conflict(
                "服务任务已不在等待", "The service task is no longer waiting", code="stale"
            )
        incident.resolved_at = clock.now()
        incident.resolved_by = actor.label
        token.state = {**token.state, "attempts": 0}
        schedule(
            uow.session,
            JOB_SERVICE,
            due_at=clock.now(),
            key=f"service:{token.id}",
            payload={"instance": state.row.id, "token": token.id, "node": token.node_id},
        )
        run.history(state, "incident.retried", node_id=token.node_id, token=token)
        uow.record("workflow.incident.retry", f"incident:{incident.id}", {"id": incident.id})
        run.finish()
        uow.commit()
    return IncidentView.of(incident)


register_job_handler(JOB_SERVICE, call_service)
