"""Widgets by area: shell/ (nav bar, status bar, empty states), config/, logs/."""
