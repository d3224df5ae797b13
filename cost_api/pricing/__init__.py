"""Prices: `pricing.yaml` and overrides loaded and validated, matching a logged model to its entry,
dated rates and tiers, and the reports of `cost-api pricing`. No I/O beyond reading the files."""
