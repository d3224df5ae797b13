"""What watches the spend: per-endpoint budgets, the anomaly rules replayed over history, and the
alert engine that sends their episodes to a signed webhook."""
