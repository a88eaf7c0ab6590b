"""Widgets of the Train screen: one panel widget per panel kind (progress, chart, stats, bars, samples,
events, system) on a shared frame (base.py), the dashboard grid that places them from a layout, the layout
editor, and their number formatting (fmt.py)."""
