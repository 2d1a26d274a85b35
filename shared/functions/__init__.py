"""Azure Functions triggers, one blueprint per module. Each parses its input and hands off."""
