"""Observability: everything the process writes about itself, fed from one place."""
