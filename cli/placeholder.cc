// Removed once cli/ has real sources (keeps the static library non-empty).
