"""State a replica keeps between requests (conversations, latencies, decisions, cooldowns), in process or in Redis."""
