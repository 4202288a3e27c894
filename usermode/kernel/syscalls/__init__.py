"""Syscall handlers, one module per family, combined in table.py."""
