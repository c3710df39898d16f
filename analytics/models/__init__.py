"""Survival models: landmark datasets, estimators, validation, clinical scores, registry."""
