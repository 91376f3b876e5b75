"""Services every floor may use: process state, the records writer thread, signals, quiet start-up,
redaction, file locks, checked files, default paths."""
