"""In-app messages (站内消息) and the unread count behind the bell in every page.

Any module notifies inside its own transaction (``notify(session, ...)``), so a message
exists exactly when the change that caused it does. The kernel itself turns workflow
events into messages (``workflow_messages``): new work assigned to someone, 催办 and
抄送 — the three moments a person must learn about without watching a list.
"""

from xietong.kernel.notify.service import (
    MessageView,
    list_messages,
    mark_read,
    notify,
    role_holders,
    unread_count,
)

__all__ = ["MessageView", "list_messages", "mark_read", "notify", "role_holders", "unread_count"]
