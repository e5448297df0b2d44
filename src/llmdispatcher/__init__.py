"""llmdispatcher: one client for every LLM vendor.

Importing this package touches neither network nor disk; HTTP and vendor modules load on first
use. The names below are the public API.
"""

from __future__ import annotations

from .clock import Clock, FakeClock, SystemClock
from .config import Config, VendorSpec
from .dispatcher import Dispatcher
from .observability.stats import Stats, VendorStats
from .resilience.retry import RetryPolicy
from .routing.rules import RoutingCondition, RoutingRule
from .types import (
    Attempt,
    ImagePart,
    Message,
    Request,
    Response,
    StreamChunk,
    TextPart,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "Clock",
    "Config",
    "Dispatcher",
    "FakeClock",
    "ImagePart",
    "Message",
    "Request",
    "Response",
    "RetryPolicy",
    "RoutingCondition",
    "RoutingRule",
    "Stats",
    "StreamChunk",
    "SystemClock",
    "TextPart",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "VendorSpec",
    "VendorStats",
    "__version__",
]
