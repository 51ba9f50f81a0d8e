"""The orchestrator: the loop (`loop`), its checks before it starts, its lock, continuous mode and state sync."""
