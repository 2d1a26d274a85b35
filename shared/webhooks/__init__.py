"""Partner Center webhooks (docs/webhooks.md): verify and store events, sync their customers, manage the
registration. docs/webhooks.md tells the whole story."""

from .processing import poisoned_events, process_pending_events, webhook_status

__all__ = ["poisoned_events", "process_pending_events", "webhook_status"]
