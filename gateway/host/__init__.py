"""The operating system as the daemon uses it: the C library, thread names, the allocator's
arenas, and durable (crash- and power-cut-safe) file writes."""
