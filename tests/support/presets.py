"""Overrides the tests run with."""

# The shipped debug preset: seconds-long fits, large enough for a model to learn the planted words.
DEBUG = ["debug=tiny"]
