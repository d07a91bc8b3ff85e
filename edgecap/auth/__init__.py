"""Ways in: the token service client and the spare-token prefetcher."""
