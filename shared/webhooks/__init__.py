"""Partner Center webhooks: verify and store events, sync their customers, manage the
registration. docs/webhooks.md tells the whole story."""
