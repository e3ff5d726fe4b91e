"""Real RapidPro API v2 sample payloads (BSD-3, see LICENSE-NOTE.md) used by the double."""
