"""cost-api: a read-only analytics API over an LLM gateway's request log."""

__version__ = "0.1.0"
