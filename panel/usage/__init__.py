"""Usage samples that billing aggregates per period."""
