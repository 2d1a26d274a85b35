"""A stand-in for the Platform's Event Grid topic, on loopback (docs/events.md)."""

from .topic import StandInTopic

__all__ = ["StandInTopic"]
