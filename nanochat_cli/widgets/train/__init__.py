"""Widgets of the Train screen: one panel widget per panel kind, the grid that lays them out from a layout
preset, the run table and header, and the live-run handle they all read from."""
