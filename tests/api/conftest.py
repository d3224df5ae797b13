"""Fixtures of the page tests (tests/api/test_page*.py), from their browser harness."""

from .page_harness import async_api, browser, servers, watched

__all__ = ["async_api", "browser", "servers", "watched"]
