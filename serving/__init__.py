"""Serving: settings, the HTTP API, the CLI, and the wiring of backends."""
