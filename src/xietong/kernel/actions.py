"""The kernel's access-control actions (apps declare theirs in their own plugin)."""

from __future__ import annotations

from xietong.kernel.access import Role, register_action


def register() -> None:
    register_action("auth.login", "public", [], "登录", "Log in")
    register_action(
        "auth.me", "authenticated", [], "查看本人信息", "Read own profile", read_only=True
    )
    register_action(
        "notify.read", "authenticated", [], "查看与标记本人的站内消息", "Read own in-app messages"
    )
    register_action("files.upload", "authenticated", [], "上传文件", "Upload a file")
    register_action(
        "files.read", "authenticated", [], "查看本人上传的文件", "Read own uploads", read_only=True
    )
    register_action("platform.health", "public", [], "健康检查", "Health check", read_only=True)
    register_action(
        "audit.read", "global", [Role.AUDITOR], "查看审计日志", "Read the audit log", read_only=True
    )
    register_action(
        "org.read", "authenticated", [], "查看组织机构", "Read the organisation", read_only=True
    )
    register_action(
        "org.manage",
        "global",
        [Role.ADMIN],
        "管理组织机构与用户",
        "Manage the organisation and users",
    )
    register_action(
        "org.department.manage",
        "department",
        [Role.HEAD],
        "管理本部门成员",
        "Manage members of a department",
    )
    register_action(
        "org.person.read",
        "department",
        [Role.WINDOW_CLERK, Role.REVIEWER, Role.APPROVER],
        "查看自然人信息",
        "Read natural persons",
        read_only=True,
    )
    register_action(
        "org.person.register",
        "authenticated",
        [],
        "登记自然人或法人",
        "Register a natural or legal person",
    )
    register_action(
        "org.system.manage",
        "department",
        [Role.DATA_STEWARD, Role.HEAD],
        "管理接入系统",
        "Manage connected systems",
    )
    register_action("org.delegation.manage", "authenticated", [], "设置代理", "Manage delegations")
    register_action(
        "bus.webhook.manage", "global", [Role.ADMIN], "管理事件订阅", "Manage webhook subscriptions"
    )
    register_action(
        "calendar.manage",
        "global",
        [Role.ADMIN],
        "维护工作日历",
        "Maintain the working-day calendar",
    )
    register_action(
        "calendar.read", "authenticated", [], "查询工作日", "Query working days", read_only=True
    )
    from xietong.kernel.workflow import actions as workflow_actions

    workflow_actions.register()
