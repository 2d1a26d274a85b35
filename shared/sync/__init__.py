"""The sync engine (incremental sync and full reconciliation) and the code that wires it up."""
