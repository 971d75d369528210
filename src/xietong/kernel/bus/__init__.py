"""The kernel bus: transactional outbox relay, idempotent consumers, webhooks, jobs.

Events are written to the outbox with the change that caused them (``UnitOfWork``);
``relay_once`` publishes them (in-process or NATS JetStream) and queues webhook
deliveries; ``deliver_due`` sends those, signed per Standard Webhooks; ``run_due_jobs``
runs scheduled work; a ``Worker`` does all of it in a loop. The guarantees: nothing is
published before it is committed, nothing is lost when a process dies, and a consumer or
receiver that deduplicates on the event id sees each event once in effect.
"""

from xietong.kernel.bus.claim import backoff, owner_token
from xietong.kernel.bus.consumers import (
    CloudEvent,
    Consumer,
    Handler,
    deliver_to_consumer,
    hook_consumers,
    idempotent,
    matches,
)
from xietong.kernel.bus.delivery import deliver_due, sign_headers
from xietong.kernel.bus.jobs import (
    cancel_job,
    complete_job,
    job_handlers,
    register_job_handler,
    reschedule_failed,
    run_due_jobs,
    schedule_job,
)
from xietong.kernel.bus.models import (
    ProcessedEvent,
    ScheduledJob,
    WebhookDelivery,
    WebhookSubscription,
)
from xietong.kernel.bus.relay import (
    ConsumerFailed,
    InProcessBus,
    Publisher,
    PublisherUnavailable,
    fan_out,
    relay_once,
)
from xietong.kernel.bus.replay import (
    DeliveryInfo,
    count_deliveries,
    list_deliveries,
    replay_dead,
    replay_from,
)
from xietong.kernel.bus.webhooks import (
    CreatedSubscription,
    SubscriptionInfo,
    create_subscription,
    deactivate_subscription,
    generate_secret,
    get_subscription,
    list_subscriptions,
    rotate_secret,
    update_subscription,
)
from xietong.kernel.bus.worker import Worker, make_publisher, start_background_worker

__all__ = [
    "CloudEvent",
    "Consumer",
    "ConsumerFailed",
    "CreatedSubscription",
    "DeliveryInfo",
    "Handler",
    "InProcessBus",
    "ProcessedEvent",
    "Publisher",
    "PublisherUnavailable",
    "ScheduledJob",
    "SubscriptionInfo",
    "WebhookDelivery",
    "WebhookSubscription",
    "Worker",
    "backoff",
    "cancel_job",
    "complete_job",
    "count_deliveries",
    "create_subscription",
    "deactivate_subscription",
    "deliver_due",
    "deliver_to_consumer",
    "fan_out",
    "generate_secret",
    "get_subscription",
    "hook_consumers",
    "idempotent",
    "job_handlers",
    "list_deliveries",
    "list_subscriptions",
    "make_publisher",
    "matches",
    "owner_token",
    "register_job_handler",
    "relay_once",
    "replay_dead",
    "replay_from",
    "reschedule_failed",
    "rotate_secret",
    "run_due_jobs",
    "schedule_job",
    "sign_headers",
    "start_background_worker",
    "update_subscription",
]
