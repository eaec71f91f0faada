"""Pure statistics (numpy and scipy only): no HTTP, no Prometheus, no state."""
