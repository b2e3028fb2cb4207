"""Asterisk REST Interface: typed events and an aiohttp client. Knows nothing of experts."""
