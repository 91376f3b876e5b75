"""The archive read into a tokenized corpus (cached), then encoded into train, validation and test splits."""
