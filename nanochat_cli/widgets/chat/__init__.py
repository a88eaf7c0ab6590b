"""Widgets of the Chat screen: sampling controls and the streamed conversation view."""
