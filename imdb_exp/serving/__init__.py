"""The logged model: raw review text in, probability out, for single runs and ensembles."""
