"""Widgets of the Train screen: one panel widget per panel kind (progress, chart, stats, bars, samples, events,
system) on a shared frame (base.py), the grid that places them from a layout (dashboard.py), the tabs of those
grids plus the Runs table (views.py, runs_table.py), the run header (header.py), and their number formatting
(fmt.py). live.py is the attached run they read from. The layout editor they are edited with is plain Python
(services/layout_editor.py)."""
