"""Readers of the input formats that several algorithms share."""
