"""Synthetic Québec network, scenarios, the simulation runner, benchmarks and reports."""
