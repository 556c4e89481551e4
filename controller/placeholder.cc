// Removed once controller/ has real sources (keeps the static library non-empty).
