"""Widgets of the Checkpoints screen: the listing table, the selected checkpoint's details, the eval prompts editor."""
