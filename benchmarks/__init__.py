"""Benchmarks of TCPChatX: run them all with ``python -m benchmarks.run``."""
