"""The REST API under /api/v1: thin routes that parse, call one service, render."""
