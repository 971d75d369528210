"""Tokens, branches and joins.

A splitting gateway ends the incoming token and creates one token per outgoing flow,
each in its own *branch* (a ``WfFork`` row); the branches of one split share its
``split_id``, and a branch's ``parent_fork_id`` is the branch the split happened in. A
token's chain of branches therefore says exactly where it runs, which is what joins
and 退回 need:

- a parallel join fires when a token of the same split waits on every incoming flow;
- an inclusive join fires when no live token inside the same split can still reach
  it (the BPMN 2.0 rule, restricted to that split so a loop elsewhere cannot block it).

Every arrival at a join ends there and one fresh token leaves; the consumed tokens
remember it (``joined_into``). The fresh token leaves the split when nothing else of
the split is alive — a partial merge stays inside, in the arriving token's branch.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select

from xietong.kernel import clock
from xietong.kernel.workflow._run import InstanceState, Run
from xietong.kernel.workflow.model import Node, ProcessGraph
from xietong.kernel.workflow.store import ALIVE_TOKEN, WfFork, WfToken


def new_token(
    run: Run,
    state: InstanceState,
    node_id: str,
    *,
    fork_id: int | None = None,
    via: str | None = None,
    status: str = "active",
) -> WfToken:
    token = WfToken(
        id=run.new_id("wf_token"),
        instance_id=state.row.id,
        node_id=node_id,
        status=status,
        fork_id=fork_id,
        arrived_via=via,
        origin_task_id=run.origin_task_id,
        state={},
        created_at=clock.now(),
    )
    run.session.add(token)
    return token


def end_token(token: WfToken, status: str) -> None:
    token.status = status
    token.ended_at = clock.now()


_ALIVE = (
    select(WfToken)
    .where(WfToken.instance_id == bindparam("instance"), WfToken.status.in_(ALIVE_TOKEN))
    .order_by(WfToken.id)
)
_BRANCHES = select(WfFork.id, WfFork.split_id, WfFork.parent_fork_id).where(
    WfFork.instance_id == bindparam("instance")
)


def alive_tokens(run: Run, instance_id: int) -> list[WfToken]:
    return list(run.session.scalars(_ALIVE, {"instance": instance_id}))


@dataclass(frozen=True)
class Branches:
    """The branch rows of an instance: each branch's split and enclosing branch."""

    split: dict[int, int]
    parent: dict[int, int | None]

    def split_of(self, fork_id: int | None) -> int | None:
        return None if fork_id is None else self.split.get(fork_id)

    def chain(self, fork_id: int | None) -> list[int | None]:
        return fork_chain(self.parent, fork_id)

    def in_split(self, fork_id: int | None, split: int | None) -> bool:
        """Whether a token in branch ``fork_id`` runs inside a branch of ``split``."""
        if split is None:
            return True
        return any(self.split_of(b) == split for b in self.chain(fork_id))


def branches_of(run: Run, instance_id: int) -> Branches:
    rows = run.session.execute(_BRANCHES, {"instance": instance_id})
    split: dict[int, int] = {}
    parent: dict[int, int | None] = {}
    for fork_id, split_id, parent_id in rows:
        split[fork_id] = split_id
        parent[fork_id] = parent_id
    return Branches(split, parent)


def fork_chain(parents: dict[int, int | None], fork_id: int | None) -> list[int | None]:
    """``fork_id`` and its enclosing forks, innermost first, ending with None (the root)."""
    chain: list[int | None] = []
    current = fork_id
    while current is not None and current not in chain:
        chain.append(current)
        current = parents.get(current)
    chain.append(None)
    return chain


def join(run: Run, state: InstanceState, token: WfToken, node: Node) -> WfToken | None:
    """Park ``token`` at a joining gateway; the token that leaves when the join fires."""
    token.status = "waiting"
    run.session.flush()
    alive = alive_tokens(run, state.row.id)
    branches = branches_of(run, state.row.id)
    split = branches.split_of(token.fork_id)
    waiting = [
        t
        for t in alive
        if t.node_id == node.id and t.status == "waiting" and branches.split_of(t.fork_id) == split
    ]
    if node.kind == "parallel":
        by_flow: dict[str, WfToken] = {}
        for t in waiting:
            by_flow.setdefault(t.arrived_via or "", t)
        needed = [flow.id for flow in state.graph.incoming(node.id)]
        if any(flow_id not in by_flow for flow_id in needed):
            return None
        consumed = [by_flow[flow_id] for flow_id in needed]
    else:
        reach = reachability(state.graph)
        waiting_ids = {t.id for t in waiting}
        for other in alive:
            if other.id in waiting_ids or not branches.in_split(other.fork_id, split):
                continue
            if node.id in reach.get(other.node_id, frozenset()):
                return None
        consumed = waiting
    # every arrival ends here and one fresh token leaves: the consumed tokens remember
    # it (``joined_into``), which is how 退回 into a finished branch re-arms the join.
    # The fresh token leaves the split when nothing else of it is alive (a partial
    # merge stays inside, in the arriving token's branch).
    consumed_ids = {t.id for t in consumed}
    fork_id = token.fork_id
    if split is not None and not any(
        branches.in_split(t.fork_id, split) for t in alive if t.id not in consumed_ids
    ):
        fork_id = branches.parent.get(token.fork_id) if token.fork_id is not None else None
    out = new_token(run, state, node.id, fork_id=fork_id, via=token.arrived_via)
    for t in consumed:
        end_token(t, "done")
        t.state = {"joined_into": out.id}
    return out


_REACH: dict[int, tuple[ProcessGraph, dict[str, frozenset[str]]]] = {}


def reachability(graph: ProcessGraph) -> dict[str, frozenset[str]]:
    """For each node, the nodes reachable from it (boundary events count as exits)."""
    cached = _REACH.get(id(graph))
    if cached is not None and cached[0] is graph:
        return cached[1]
    edges: dict[str, set[str]] = {node_id: set() for node_id in graph.nodes}
    for flow in graph.flows:
        edges.setdefault(flow.source, set()).add(flow.target)
    for node in graph.nodes.values():
        if node.attached_to:
            edges.setdefault(node.attached_to, set()).add(node.id)
    result: dict[str, frozenset[str]] = {}
    for start in graph.nodes:
        seen: set[str] = set()
        stack = list(edges.get(start, ()))
        while stack:
            current = stack.pop()
            if current not in seen:
                seen.add(current)
                stack.extend(edges.get(current, ()))
        result[start] = frozenset(seen)
    _REACH[id(graph)] = (graph, result)
    return result
