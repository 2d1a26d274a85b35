"""Organization events for the Platform on Azure Event Grid (docs/events.md): the CloudEvents the
change log becomes, the topic they go to, and the publisher that drains the outbox."""
