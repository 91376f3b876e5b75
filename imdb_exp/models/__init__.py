"""One builder per model family, and the project's Keras layers."""
