"""The fit loop, its epoch ends, checkpoints (local and through the server) and Keras callbacks."""
