"""The HTTP edge: the litestar app, routes, auth, admission, metrics, CSV, problem documents, the
Grafana datasource and the page's static files."""
