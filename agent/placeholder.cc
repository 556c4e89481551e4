// Removed once agent/ has real sources (keeps the static library non-empty).
