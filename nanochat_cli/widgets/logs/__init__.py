"""Widgets of the logs area."""
