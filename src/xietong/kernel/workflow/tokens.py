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
from sqlalchemy.orm.util import identity_key

from xietong.kernel import clock
from xietong.kernel.errors import InvalidInput
from xietong.kernel.workflow._rows import add_new, connection_of, load_rows, plain_rows, reader_sql
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
    token_id: int | None = None,
) -> WfToken:
    values = {
        "id": token_id if token_id is not None else run.new_id("wf_token"),
        "instance_id": state.row.id,
        "node_id": node_id,
        "status": status,
        "fork_id": fork_id,
        "arrived_via": via,
        "origin_task_id": run.origin_task_id,
        "state": {},
        "created_at": clock.now(),
    }
    token: WfToken = add_new(run.session, WfToken, values)
    return token


def end_token(token: WfToken, status: str) -> None:
    token.status = status
    token.ended_at = clock.now()


_ALIVE = (
    select(WfToken)
    .where(WfToken.instance_id == bindparam("instance"), WfToken.status.in_(ALIVE_TOKEN))
    .order_by(WfToken.id)
)
_BRANCHES = "SELECT id, split_id, parent_fork_id FROM wf_fork WHERE instance_id = ?"


def alive_tokens(run: Run, instance_id: int) -> list[WfToken]:
    return list(run.session.scalars(_ALIVE, {"instance": instance_id}))


def live_tokens(run: Run, instance_id: int) -> list[WfToken]:
    """The instance's live tokens as this step sees them, without a flush.

    Rows the step already holds keep their in-memory state (a token that ended in this
    step is left out by its status here), and tokens made in this step come from the
    session. Sound because no step brings an ended token back to life: it makes a new
    one instead.
    """
    session = run.session
    with session.no_autoflush:
        sql = reader_sql(connection_of(session).dialect, (WfToken,), _ALIVE_SQL)
        found = {row[0].id: row[0] for row in load_rows(session, (WfToken,), sql, (instance_id,))}
    for item in session.new:
        if isinstance(item, WfToken) and item.instance_id == instance_id:
            found[item.id] = item
    return sorted((t for t in found.values() if t.status in ALIVE_TOKEN), key=lambda t: t.id)


_ALIVE_SQL = (
    "SELECT {0} FROM wf_token AS c0 WHERE c0.instance_id = ? "
    "AND c0.status IN ('active', 'waiting') ORDER BY c0.id"
)
_ALIVE_IDS = "SELECT id FROM wf_token WHERE instance_id = ? AND status IN ('active', 'waiting')"
assert ALIVE_TOKEN == ("active", "waiting")  # the two statements above spell it out


def any_live_token(run: Run, instance_id: int) -> bool:
    """Whether ``live_tokens`` would return any, without loading token objects.

    The ids of the rows alive in the database, read as plain values: a row the step
    holds counts by its in-memory status, any other is alive; tokens made in this
    step come from the session.
    """
    session = run.session
    for item in session.new:
        if (
            isinstance(item, WfToken)
            and item.instance_id == instance_id
            and item.status in ALIVE_TOKEN
        ):
            return True
    ids = [row[0] for row in plain_rows(session, _ALIVE_IDS, (instance_id,))]
    held = session.identity_map
    for token_id in ids:
        token = held.get(identity_key(WfToken, token_id))
        if token is None or token.status in ALIVE_TOKEN:
            return True
    return False


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
    session = run.session
    # branches never change; new ones come from the session
    rows = list(plain_rows(session, _BRANCHES, (instance_id,)))
    rows += [
        (item.id, item.split_id, item.parent_fork_id)
        for item in session.new
        if isinstance(item, WfFork) and item.instance_id == instance_id
    ]
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
    alive = live_tokens(run, state.row.id)
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


def jump_token(run: Run, state: InstanceState, node_id: str) -> WfToken:
    """The token a 跳转 to ``node_id`` starts, with the branches its joins will need.

    Jumping into one branch of a parallel block means: that branch runs again, and the
    block's other branches count as finished. For every parallel join the target
    reaches on only some of its incoming flows (``blocked_joins``), a split is made
    for that join — one branch per incoming flow — and a token waits at the join on
    each flow the target cannot reach; the jumped token runs in the branch of the flow
    it does reach. The join then fires when the jumped branch arrives, and the merged
    token leaves the made split, exactly as after a real fork. Nested blocks give
    nested splits (the innermost join is the nearest). A target that reaches a join by
    several but not all of its flows sits before a split of its own that cannot feed
    that join alone: such a jump is refused (``jump_into_branch``).
    """
    parent: int | None = None
    via: str | None = None
    for join_id, reached in reversed(blocked_joins(state.graph, node_id)):
        if len(reached) != 1:
            raise InvalidInput(
                f"不能跳转到节点 {node_id}：它不能单独走到汇合节点 {join_id}",
                f"Cannot jump to {node_id}: it cannot reach join {join_id} on its own",
                code="jump_into_branch",
                details={"node": node_id, "join": join_id},
            )
        incoming = state.graph.incoming(join_id)
        # a split is named by a token id: here, that of its first waiting arrival
        split = run.new_id("wf_token")
        forks = {}
        for flow in incoming:
            fork = WfFork(
                id=run.new_id("wf_fork"),
                instance_id=state.row.id,
                node_id=join_id,
                split_id=split,
                parent_fork_id=parent,
                branches=len(incoming),
                created_at=clock.now(),
            )
            run.session.add(fork)
            forks[flow.id] = fork.id
        waiting = [flow.id for flow in incoming if flow.id not in reached]
        for index, flow_id in enumerate(waiting):
            new_token(
                run,
                state,
                join_id,
                fork_id=forks[flow_id],
                via=flow_id,
                status="waiting",
                token_id=split if index == 0 else None,
            )
        (flow_id,) = reached
        parent = forks[flow_id]
        if join_id == node_id:
            via = flow_id  # a jump onto the join itself arrives on one of its flows
    return new_token(run, state, node_id, fork_id=parent, via=via)


def blocked_joins(graph: ProcessGraph, node_id: str) -> list[tuple[str, frozenset[str]]]:
    """Parallel joins ``node_id`` reaches on only some incoming flows, nearest first,
    each with the flows it reaches (without passing the join itself: a loop back to
    the block's split does not count)."""
    order: list[str] = []
    seen = {node_id}
    frontier = [node_id]
    while frontier:  # breadth first: nearer joins (inner blocks) come first
        following = []
        for current in frontier:
            node = graph.nodes[current]
            if node.kind == "parallel" and len(graph.incoming(current)) > 1:
                order.append(current)
            for flow in graph.outgoing(current):
                if flow.target not in seen:
                    seen.add(flow.target)
                    following.append(flow.target)
        frontier = following
    found = []
    for join_id in order:
        incoming = graph.incoming(join_id)
        if join_id == node_id:
            found.append((join_id, frozenset({incoming[0].id})))
            continue
        reach = _reach_avoiding(graph, node_id, join_id)
        reached = frozenset(f.id for f in incoming if f.source == node_id or f.source in reach)
        if len(reached) < len(incoming):
            found.append((join_id, reached))
    return found


def _reach_avoiding(graph: ProcessGraph, start: str, avoid: str) -> set[str]:
    seen: set[str] = set()
    stack = [f.target for f in graph.outgoing(start)]
    while stack:
        current = stack.pop()
        if current in seen or current == avoid:
            continue
        seen.add(current)
        stack.extend(f.target for f in graph.outgoing(current))
    return seen


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
