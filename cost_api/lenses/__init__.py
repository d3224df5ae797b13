"""The answers: each lens (summary, spend, savings, trend, live, requests, pricing, anomalies) folds the
aggregation layer's groups into one answer: a `msgspec.Struct` that litestar encodes and documents in
the OpenAPI document (trend's: still a dict). The blocks they share (range, pricing, data_quality,
money, key fields) are in aggregation/blocks.py."""
