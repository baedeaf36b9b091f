"""Recording meetings: the recorder subscribes to a meeting's router and writes WebM pieces."""
