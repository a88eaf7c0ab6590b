"""The TUI screens: one module per tab (config, train, checkpoints, chat, logs), the modals, the edit session."""
