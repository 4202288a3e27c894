"""Devices: consoles, block devices, network, mconsole."""
