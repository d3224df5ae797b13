"""Turn a provider's usage report into the request log's token columns.

For gateways: `from_response(provider, body)` reads a non-streamed JSON body;
`StreamUsage(provider)` is fed a stream as it arrives (decoded SSE events, raw lines, whole SSE
events, or the pieces of Gemini's JSON-array stream) and `.result()` gives the same `Usage`.
The rules are the normalisation table of docs/gateway-integration.md: `prompt_tokens` excludes
cache reads and writes, `completion_tokens` includes reasoning. Anthropic's 1-hour cache writes
(`cache_write_1h_tokens`, a part of `cache_write_tokens`) and OpenAI's `service_tier` fill the log's
optional columns (docs/request-log.md).

Pure: no I/O. A frame that breaks the provider's contract (a count that is negative or not an
integer, cached tokens above the prompt) raises `UsageError`; a stream that ended without its
final usage report, or that carried text it could not read, gives `Usage.exact == False` rather
than counts passed off as real.

The names below are the API; the modules of this package are how it is built, not to be imported.
"""

from cost_api.usage.base import Usage, UsageError
from cost_api.usage.read import PROVIDERS, StreamUsage, from_response

__all__ = ["PROVIDERS", "StreamUsage", "Usage", "UsageError", "from_response"]
