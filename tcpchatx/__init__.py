"""TCPChatX: a threaded TCP chat server and client, built to be captured and studied."""

__version__ = "0.1.0"
