"""Deploying process definitions: every deployment of a key is a new, immutable version.

A running instance keeps the version it started with; ``start`` takes the latest. The
graph is stored as JSON and parsed once per process (definitions never change after
deployment, so the cache needs no invalidation — only separation per database).
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NamedTuple

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from xietong.kernel import clock
from xietong.kernel.access import Actor, authorize
from xietong.kernel.context import Context
from xietong.kernel.db import Database
from xietong.kernel.errors import Conflict, InvalidInput, NotFound
from xietong.kernel.uow import UnitOfWork
from xietong.kernel.workflow._rows import plain_rows
from xietong.kernel.workflow.events import MODULE, DefinitionDeployed
from xietong.kernel.workflow.model import ProcessGraph
from xietong.kernel.workflow.store import WfDefinition

SourceFormat = Literal["bpmn", "yaml", "graph"]
MAX_SOURCE_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class DefinitionView:
    id: int
    key: str
    version: int
    name: str
    source_format: str
    deployed_at: datetime
    deployed_by: str

    @classmethod
    def of(cls, row: WfDefinition) -> DefinitionView:
        return cls(
            row.id,
            row.key,
            row.version,
            row.name,
            row.source_format,
            row.deployed_at,
            row.deployed_by,
        )


_graphs: weakref.WeakKeyDictionary[Database, dict[int, ProcessGraph]] = weakref.WeakKeyDictionary()
_graphs_lock = threading.Lock()


def graph_of(db: Database, row: WfDefinition) -> ProcessGraph:
    """The parsed graph of a definition row, cached per database and definition id."""
    with _graphs_lock:
        cache = _graphs.setdefault(db, {})
    graph = cache.get(row.id)
    if graph is None or graph.key != row.key:
        graph = ProcessGraph.from_dict(row.graph)
        cache[row.id] = graph
    return graph


def graph_by_id(db: Database, session: Session, definition_id: int) -> ProcessGraph:
    with _graphs_lock:
        cache = _graphs.setdefault(db, {})
    graph = cache.get(definition_id)
    if graph is not None:
        return graph
    row = session.get(WfDefinition, definition_id)
    if row is None:
        raise NotFound.of("流程定义", "Process definition", definition_id)
    return graph_of(db, row)


def parse_source(source: str, source_format: SourceFormat) -> list[ProcessGraph]:
    """Compile BPMN XML or a YAML template to graphs, validated (raises InvalidInput)."""
    if len(source.encode("utf-8")) > MAX_SOURCE_BYTES:
        raise InvalidInput(
            "流程定义文件过大",
            f"Definition source larger than {MAX_SOURCE_BYTES} bytes",
            code="source_too_large",
        )
    # Imported here: the importers are optional at import time of the runtime (the
    # engine runs stored graphs and must not pay for the XML and YAML parsers).
    if source_format == "bpmn":
        from xietong.kernel.workflow import bpmn

        graphs = list(bpmn.compile_bpmn(source))
    elif source_format == "yaml":
        from xietong.kernel.workflow import template

        graphs = [template.compile_template(source)]
    else:
        raise InvalidInput(
            f"不支持的定义格式：{source_format}",
            f"Unsupported definition format: {source_format}",
            code="unsupported_format",
        )
    from xietong.kernel.workflow import validate

    for graph in graphs:
        validate.validate(graph)
    return graphs


def deploy(
    ctx: Context, actor: Actor, source: str, source_format: SourceFormat
) -> list[DefinitionView]:
    """Deploy every executable process of a BPMN file (or the YAML template's one)."""
    authorize(actor, "workflow.definition.deploy")
    graphs = parse_source(source, source_format)
    return [_deploy(ctx, actor, graph, source, source_format) for graph in graphs]


def deploy_graph(
    ctx: Context,
    actor: Actor,
    graph: ProcessGraph,
    *,
    source: str = "",
    source_format: SourceFormat = "graph",
    check: bool = True,
) -> DefinitionView:
    """Deploy an already compiled graph (tests, apps that build processes in code).

    ``check=False`` skips deploy-time validation: only for tests that need a graph the
    validator would refuse, to see what the runtime does with it.
    """
    authorize(actor, "workflow.definition.deploy")
    if check:
        from xietong.kernel.workflow import validate

        validate.validate(graph)
    return _deploy(ctx, actor, graph, source, source_format)


def _deploy(
    ctx: Context, actor: Actor, graph: ProcessGraph, source: str, source_format: str
) -> DefinitionView:
    try:
        with UnitOfWork(ctx, actor) as uow:
            latest = uow.session.scalar(
                select(func.max(WfDefinition.version)).where(WfDefinition.key == graph.key)
            )
            row = WfDefinition(
                key=graph.key,
                version=(latest or 0) + 1,
                name=graph.name or graph.key,
                source_format=source_format,
                source=source,
                graph=graph.to_dict(),
                deployed_at=clock.now(),
                deployed_by=actor.label,
            )
            uow.session.add(row)
            uow.session.flush()
            uow.record(
                "workflow.definition.deploy",
                f"process:{row.key}:{row.version}",
                {"definition_id": row.id, "key": row.key, "version": row.version},
            )
            uow.emit(DefinitionDeployed(row.id, row.key, row.version), module=MODULE)
            uow.commit()
    except IntegrityError:
        # two deployments of one key raced for the same version number
        raise Conflict(
            "同一流程正在被同时部署，请重试",
            f"Process {graph.key} is being deployed concurrently; retry",
            code="deploy_race",
        ) from None
    return DefinitionView.of(row)


def latest_definition(session: Session, key: str) -> WfDefinition:
    """The newest version of ``key``; its source and graph JSON load only when read
    (a start takes the parsed graph from the cache)."""
    row = session.scalars(
        select(WfDefinition)
        .options(defer(WfDefinition.source), defer(WfDefinition.graph))
        .where(WfDefinition.key == key)
        .order_by(WfDefinition.version.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NotFound.of("流程定义", "Process definition", key)
    return row


class DefinitionRef(NamedTuple):
    """What starting an instance needs of a definition: no ORM object, no source."""

    id: int
    key: str
    version: int


_LATEST_REF = (
    "SELECT id, key, version FROM wf_definition WHERE key = ? ORDER BY version DESC LIMIT 1"
)


def latest_ref(session: Session, key: str) -> DefinitionRef:
    """``latest_definition``'s id, key and version, as one plain read (every start
    asks; the parsed graph comes from the cache by id)."""
    rows = plain_rows(session, _LATEST_REF, (key,))
    if not rows:
        raise NotFound.of("流程定义", "Process definition", key)
    return DefinitionRef(*rows[0])


def find_definition(session: Session, key: str, version: int) -> WfDefinition:
    row = session.scalars(
        select(WfDefinition).where(WfDefinition.key == key, WfDefinition.version == version)
    ).first()
    if row is None:
        raise NotFound.of("流程定义版本", "Process definition version", f"{key}:{version}")
    return row


def list_definitions(ctx: Context, actor: Actor, key: str | None = None) -> list[DefinitionView]:
    """The latest version of every process (or every version of ``key``)."""
    authorize(actor, "workflow.definition.read")
    with ctx.db.read() as session:
        if key is not None:
            rows = session.scalars(
                select(WfDefinition)
                .where(WfDefinition.key == key)
                .order_by(WfDefinition.version.desc())
            )
        else:
            newest = (
                select(WfDefinition.key, func.max(WfDefinition.version).label("version"))
                .group_by(WfDefinition.key)
                .subquery()
            )
            rows = session.scalars(
                select(WfDefinition)
                .join(
                    newest,
                    (WfDefinition.key == newest.c.key) & (WfDefinition.version == newest.c.version),
                )
                .order_by(WfDefinition.key)
            )
        return [DefinitionView.of(row) for row in rows]


@dataclass(frozen=True)
class DefinitionDetail:
    definition: DefinitionView
    graph: dict[str, object]
    source: str


def get_definition(ctx: Context, actor: Actor, key: str, version: int) -> DefinitionDetail:
    authorize(actor, "workflow.definition.read")
    with ctx.db.read() as session:
        row = find_definition(session, key, version)
        return DefinitionDetail(DefinitionView.of(row), dict(row.graph), row.source)
