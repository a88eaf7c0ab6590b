"""The app's tabs (one screen each) in order: internal name -> label (number keys 1..5 follow this order).

Neutral ground: the app, the command palette and the nav bar widget all read it, and widgets never import
screens.
"""

SCREENS: dict[str, str] = {
    "config": "Config",
    "train": "Train",
    "checkpoints": "Checkpoints",
    "chat": "Chat",
    "logs": "Logs",
}
