"""Widgets of the config area."""
