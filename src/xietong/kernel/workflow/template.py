"""The YAML business template (业务模板): a process for business staff, compiled to a graph.

A template is a sequence of steps; ``parallel`` runs branches side by side, ``choose``
takes the first ``when`` that holds (else ``otherwise``), ``end`` stops a branch. The
compiler adds the start and end events, gateways and flows, so staff write only what
happens. Generated ids derive from step ids and positions, so compiling the same text
twice gives the same graph. docs/workflow-definitions.md has the full reference.

Input is untrusted: ``yaml.safe_load`` semantics, no aliases (an alias bomb expands
exponentially), a size limit, and every unknown key refused with its path.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from xietong.kernel.errors import InvalidInput
from xietong.kernel.workflow.model import (
    Assignment,
    Flow,
    MultiInstance,
    Node,
    ProcessGraph,
    ServiceCall,
    TaskTimeout,
    Timer,
)

MAX_TEMPLATE_BYTES = 1024 * 1024
STEP_KINDS = ("task", "service", "call", "wait", "parallel", "choose", "end")
_ID = re.compile(r"^[^\W\d][\w.-]{0,99}$")
_COUNTERSIGN = {
    "all": "countersign_all",
    "any": "countersign_any",
    "vote": "vote",
    "sequential": "sequential_sign",
}
_STEP_KEYS = {
    "task": {"on_timer", "on_message"},
    "service": {"on_timer", "on_message"},
    "call": {"on_timer", "on_message"},
}
# a pending link into the next node: (source node, condition, is the source's default)
_Link = tuple[str, str | None, bool]


def template_error(path: str, zh: str, en: str) -> InvalidInput:
    return InvalidInput(
        f"业务模板错误：{path}：{zh}",
        f"template error at {path}: {en}",
        code="invalid_template",
        details={"path": path},
    )


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            line = event.start_mark.line + 1 if event.start_mark else "?"
            raise template_error(f"line {line}", "不允许使用别名 (*)", "aliases (*) are refused")
        return super().compose_node(parent, index)


def read_template(text: str | bytes) -> ProcessGraph:
    """Parse YAML text and compile it; InvalidInput(code="invalid_template") names the path."""
    if len(text) > MAX_TEMPLATE_BYTES:
        raise template_error("$", "文件过大", f"larger than {MAX_TEMPLATE_BYTES} bytes")
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "$"
        raise template_error(where, f"YAML 语法错误：{error}", f"YAML syntax: {error}") from None
    return _Compiler().process(data)


def compile_template(data: Any) -> ProcessGraph:
    """Compile a template: YAML text, or an already-parsed mapping (a JSON API body)."""
    if isinstance(data, str | bytes):
        return read_template(data)
    return _Compiler().process(data)


def _check_keys(value: Any, path: str, allowed: set[str], required: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, Mapping):
        raise template_error(path, "应为映射（键: 值）", "expected a mapping")
    for key in value:
        if key not in allowed:
            raise template_error(f"{path}.{key}", "未知的键", f"unknown key {key!r}")
    for key in required:
        if key not in value:
            raise template_error(f"{path}.{key}", "缺少必填项", "required")
    return dict(value)


def _typed(value: Any, path: str, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise template_error(path, f"应为{what}", f"expected {what}")
    return value


def _strings(value: Any, path: str) -> tuple[str, ...]:
    _typed(value, path, list, "a list of text")
    return tuple(_typed(item, f"{path}[{i}]", str, "text") for i, item in enumerate(value))


def _identifier(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise template_error(path, "应为标识符（字母开头）", "expected an identifier")
    return value


class _Compiler:
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.flows: list[Flow] = []

    def add_node(self, node_id: str, path: str, **fields: Any) -> str:
        if node_id in self.nodes:
            raise template_error(path, f"id 重复：{node_id}", f"duplicate id {node_id!r}")
        self.nodes[node_id] = {"id": node_id, **fields}
        return node_id

    def connect(self, links: list[_Link], target: str) -> None:
        for source, condition, is_default in links:
            flow_id = base = f"flow_{source}_{target}"
            number = 2
            while any(flow.id == flow_id for flow in self.flows):
                flow_id, number = f"{base}_{number}", number + 1
            self.flows.append(Flow(id=flow_id, source=source, target=target, condition=condition))
            if is_default:
                self.nodes[source]["default_flow"] = flow_id

    def process(self, data: Any) -> ProcessGraph:
        top = _check_keys(data, "$", {"key", "name", "description", "steps"}, ("key", "steps"))
        key = _identifier(top["key"], "key")
        name = _typed(top.get("name", key), "name", str, "text")
        start = self.add_node("start", "$", kind="start", name="开始")
        exits = self.sequence(top["steps"], "steps", [(start, None, False)])
        if exits:
            self.connect(exits, self.add_node("end", "$", kind="end", name="结束"))
        nodes = {node_id: Node(**fields) for node_id, fields in self.nodes.items()}
        return ProcessGraph(key=key, name=name, nodes=nodes, flows=tuple(self.flows))

    def sequence(self, steps: Any, path: str, links: list[_Link]) -> list[_Link]:
        _typed(steps, path, list, "a list of steps")
        for index, step in enumerate(steps):
            if not links:
                raise template_error(
                    f"{path}[{index}]",
                    "前面的分支已结束，此步骤无法到达",
                    "unreachable after an end",
                )
            links = self.step(step, f"{path}[{index}]", links)
        return links

    def step(self, step: Any, path: str, links: list[_Link]) -> list[_Link]:
        if not isinstance(step, Mapping):
            raise template_error(path, "步骤应为映射", "a step must be a mapping")
        kinds = [kind for kind in STEP_KINDS if kind in step]
        if len(kinds) != 1:
            raise template_error(
                path, f"步骤须含且仅含 {'/'.join(STEP_KINDS)} 之一", f"needs one of {STEP_KINDS}"
            )
        kind = kinds[0]
        spec = _check_keys(step, path, {"id", "name", kind} | _STEP_KEYS.get(kind, set()))
        suffix = "_".join(re.findall(r"\d+", path))
        if kind in ("task", "service", "call"):
            step_id = _identifier(spec.get("id"), f"{path}.id")
        else:
            step_id = _identifier(spec.get("id", f"{kind}_{suffix}"), f"{path}.id")
        name = _typed(spec.get("name", step_id), f"{path}.name", str, "text")
        body, body_path = spec[kind], f"{path}.{kind}"
        if kind == "parallel":
            return self.parallel(step_id, name, body, body_path, links)
        if kind == "choose":
            return self.choose(step_id, name, body, body_path, links)
        if kind == "end":
            if body not in ("normal", "terminate"):
                raise template_error(body_path, "应为 normal 或 terminate", "normal or terminate")
            kind_name = "end" if body == "normal" else "terminate"
            self.connect(links, self.add_node(step_id, path, kind=kind_name, name=name))
            return []
        fields = getattr(self, f"{kind}_fields")(body, body_path)
        self.connect(links, self.add_node(step_id, path, name=name, **fields))
        exits: list[_Link] = [(step_id, None, False)]
        if "on_timer" in spec:
            exits += self.on_timer(step_id, spec["on_timer"], f"{path}.on_timer")
        if "on_message" in spec:
            exits += self.on_message(step_id, spec["on_message"], f"{path}.on_message")
        return exits

    def task_fields(self, body: Any, path: str) -> dict[str, Any]:
        allowed = {"roles", "users", "assignee", "department", "form", "countersign"}
        allowed |= {"signers", "pass_ratio", "weights", "timeout"}
        spec = _check_keys(body, path, allowed)
        texts = {"assignee", "department", "form", "countersign", "signers", "weights"}
        text = {k: _typed(spec[k], f"{path}.{k}", str, "text") for k in spec if k in texts}
        multi = None
        if "countersign" in spec:
            mode = _COUNTERSIGN.get(spec["countersign"])
            if mode is None:
                raise template_error(f"{path}.countersign", "应为 all/any/vote/sequential", "mode")
            if "signers" not in spec:
                raise template_error(f"{path}.signers", "会签须指定签署人", "required")
            ratio = spec.get("pass_ratio")
            if ratio is not None:
                _typed(ratio, f"{path}.pass_ratio", (int, float), "a number")
            multi = MultiInstance(
                mode=mode,  # type: ignore[arg-type]
                signers=text["signers"],
                pass_ratio=None if ratio is None else float(ratio),
                weights=spec.get("weights") and text["weights"],
            )
        elif {"signers", "pass_ratio", "weights"} & set(spec):
            raise template_error(f"{path}.countersign", "签署人须配合会签方式", "required")
        roles = _strings(spec.get("roles", []), f"{path}.roles")
        users = _strings(spec.get("users", []), f"{path}.users")
        assignee = spec.get("assignee") and text["assignee"]
        department = spec.get("department") and text["department"]
        assignment = None
        if roles or users or assignee or department:
            assignment = Assignment(assignee, users, roles, department)
        return {
            "kind": "user_task",
            "assignment": assignment,
            "multi": multi,
            "timeout": self.timeout(spec["timeout"], f"{path}.timeout")
            if "timeout" in spec
            else None,
            "form_key": spec.get("form") and text["form"],
        }

    def timeout(self, body: Any, path: str) -> TaskTimeout:
        spec = _check_keys(body, path, {"working_days", "action"}, ("working_days",))
        days = _typed(spec["working_days"], f"{path}.working_days", int, "an integer")
        if days < 1:
            raise template_error(f"{path}.working_days", "应为正整数", "must be at least 1")
        action = spec.get("action", "remind")
        if action not in ("remind", "approve", "reject"):
            raise template_error(f"{path}.action", "应为 remind/approve/reject", "invalid action")
        return TaskTimeout(after_working_days=days, action=action)

    def service_fields(self, body: Any, path: str) -> dict[str, Any]:
        spec = _check_keys(body, path, {"connector", "url", "retries", "outputs"})
        for key in ("connector", "url"):
            if key in spec:
                _typed(spec[key], f"{path}.{key}", str, "text")
        call = ServiceCall(
            connector=spec.get("connector"),
            url=spec.get("url"),
            retries=_typed(spec.get("retries", 3), f"{path}.retries", int, "an integer"),
            outputs=_strings(spec.get("outputs", []), f"{path}.outputs"),
        )
        return {"kind": "service_task", "service": call}

    def call_fields(self, body: Any, path: str) -> dict[str, Any]:
        if isinstance(body, str):
            body = {"process": body}
        spec = _check_keys(body, path, {"process"}, ("process",))
        return {"kind": "call", "called_process": _identifier(spec["process"], f"{path}.process")}

    def wait_fields(self, body: Any, path: str) -> dict[str, Any]:
        allowed = {"duration", "date", "cycle", "working_days", "message", "correlation"}
        spec = _check_keys(body, path, allowed)
        timers = [kind for kind in ("duration", "date", "cycle") if kind in spec]
        if len(timers) + ("message" in spec) != 1:
            raise template_error(path, "须且仅须指定一种等待", "one of duration/date/cycle/message")
        if "message" in spec:
            if "working_days" in spec:
                raise template_error(f"{path}.working_days", "仅用于定时", "timers only")
            return {
                "kind": "message",
                "message": _typed(spec["message"], f"{path}.message", str, "text"),
                "correlation_key": spec.get("correlation")
                and _typed(spec["correlation"], f"{path}.correlation", str, "text"),
            }
        if "correlation" in spec:
            raise template_error(f"{path}.correlation", "仅用于消息", "messages only")
        kind = timers[0]
        working = _typed(spec.get("working_days", False), f"{path}.working_days", bool, "bool")
        expression = _typed(spec[kind], f"{path}.{kind}", str, "text")
        return {"kind": "timer", "timer": Timer(kind, expression, working)}  # type: ignore[arg-type]

    def on_timer(self, host: str, body: Any, path: str) -> list[_Link]:
        allowed = {"after", "working_days", "interrupting", "steps"}
        spec = _check_keys(body, path, allowed, ("after",))
        after = _typed(spec["after"], f"{path}.after", str, "text")
        working = _typed(spec.get("working_days", False), f"{path}.working_days", bool, "bool")
        fields = {"kind": "timer", "name": "超时", "timer": Timer("duration", after, working)}
        return self._boundary(host, "timer", spec, path, fields)

    def on_message(self, host: str, body: Any, path: str) -> list[_Link]:
        """A boundary message event: ``message`` (its name), ``correlation`` (an
        expression evaluated when the step starts), ``interrupting``, ``steps``."""
        allowed = {"message", "correlation", "interrupting", "steps"}
        spec = _check_keys(body, path, allowed, ("message",))
        correlation = spec.get("correlation")
        fields = {
            "kind": "message",
            "name": "消息",
            "message": _typed(spec["message"], f"{path}.message", str, "text"),
            "correlation_key": correlation
            and _typed(correlation, f"{path}.correlation", str, "text"),
        }
        return self._boundary(host, "message", spec, path, fields)

    def _boundary(
        self, host: str, suffix: str, spec: Mapping[str, Any], path: str, fields: dict[str, Any]
    ) -> list[_Link]:
        interrupting = _typed(spec.get("interrupting", True), f"{path}.interrupting", bool, "bool")
        event_id = self.add_node(
            f"{host}_{suffix}", path, attached_to=host, cancel_activity=interrupting, **fields
        )
        exits = self.sequence(spec.get("steps", []), f"{path}.steps", [(event_id, None, False)])
        if interrupting or not exits:
            return exits  # the escalation replaces the task and goes on after it
        # a non-interrupting event runs beside the task: its branch must not go on too
        end = self.add_node(f"{host}_{suffix}_end", path, kind="end", name="结束")
        self.connect(exits, end)
        return []

    def parallel(
        self, gw_id: str, name: str, body: Any, path: str, links: list[_Link]
    ) -> list[_Link]:
        _typed(body, path, list, "a list of branches")
        if len(body) < 2:
            raise template_error(path, "并行至少两个分支", "needs at least two branches")
        self.connect(links, self.add_node(gw_id, path, kind="parallel", name=name))
        exits: list[_Link] = []
        for index, branch in enumerate(body):
            branch_path = f"{path}[{index}]"
            if isinstance(branch, Mapping) and set(branch) == {"steps"}:
                steps, branch_path = branch["steps"], f"{branch_path}.steps"
            else:
                steps = [branch]
            exits += self.sequence(steps, branch_path, [(gw_id, None, False)])
        if not exits:
            return []
        join = self.add_node(f"{gw_id}_join", path, kind="parallel", name=f"{name}（汇合）")
        self.connect(exits, join)
        return [(join, None, False)]

    def choose(
        self, gw_id: str, name: str, body: Any, path: str, links: list[_Link]
    ) -> list[_Link]:
        _typed(body, path, list, "a list of when/otherwise")
        if all(isinstance(o, Mapping) and "otherwise" in o for o in body):
            raise template_error(path, "至少需要一个 when 分支", "needs at least one when")
        self.connect(links, self.add_node(gw_id, path, kind="exclusive", name=name))
        exits: list[_Link] = []
        for index, option in enumerate(body):
            option_path = f"{path}[{index}]"
            if isinstance(option, Mapping) and "otherwise" in option:
                _check_keys(option, option_path, {"otherwise"})
                if index != len(body) - 1:
                    raise template_error(
                        option_path, "otherwise 须在最后", "otherwise must be last"
                    )
                link: _Link = (gw_id, None, True)
                steps, steps_path = option["otherwise"], f"{option_path}.otherwise"
            else:
                spec = _check_keys(option, option_path, {"when", "steps"}, ("when",))
                condition = _typed(spec["when"], f"{option_path}.when", str, "text")
                link = (gw_id, condition, False)
                steps, steps_path = spec.get("steps", []), f"{option_path}.steps"
            exits += self.sequence(steps, steps_path, [link])
        if not exits:
            return []
        join = self.add_node(f"{gw_id}_join", path, kind="exclusive", name=f"{name}（汇合）")
        self.connect(exits, join)
        return [(join, None, False)]
