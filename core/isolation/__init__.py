"""Keeping uploaded models out of the server: worker processes, their plain-data wire format, their request loop."""
