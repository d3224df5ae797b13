"""Command-line tools beside the service: the demo log generator, `report` and `smoke`."""
