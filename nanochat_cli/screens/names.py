"""The app's screens in tab order: internal name -> label (number keys 1..5 follow this order)."""

SCREENS: dict[str, str] = {
    "config": "Config",
    "train": "Train",
    "checkpoints": "Checkpoints",
    "chat": "Chat",
    "logs": "Logs",
}
