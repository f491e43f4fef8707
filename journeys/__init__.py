"""Journeys: YAML journey definitions and their durable runner (see issue 6)."""

__all__: list[str] = []
