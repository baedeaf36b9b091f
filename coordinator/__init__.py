"""The commune coordinator: room registry, schedule, control channel, metrics."""
