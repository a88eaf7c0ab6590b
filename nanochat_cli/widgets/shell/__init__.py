"""Widgets of the shell area."""
