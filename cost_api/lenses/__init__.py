"""The answers: each lens (summary, spend, savings, trend, live, requests, pricing) folds the
aggregation layer's groups into one JSON-ready answer."""
