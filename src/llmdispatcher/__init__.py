"""llmdispatcher: one client for every LLM vendor.

Importing this package touches neither network nor disk; HTTP and vendor modules load on first
use. The names below are the public API.
"""

from __future__ import annotations

from .budgets import Budget
from .clock import Clock, FakeClock, SystemClock
from .config import Config, VendorSpec
from .dispatcher import Dispatcher
from .embeddings import EmbeddingRequest, EmbeddingResponse
from .limits import Limits
from .observability.stats import Stats, VendorStats
from .routing.model import RoutingDecision
from .settings.resilience import CircuitBreaker, RetryBudget, RetryPolicy
from .settings.routing import Deployment, ModelGroup, Objective
from .settings.rules import RoutingCondition, RoutingRule
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
    "Budget",
    "CircuitBreaker",
    "Clock",
    "Config",
    "Deployment",
    "Dispatcher",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "FakeClock",
    "ImagePart",
    "Limits",
    "Message",
    "ModelGroup",
    "Objective",
    "Request",
    "Response",
    "RetryBudget",
    "RetryPolicy",
    "RoutingCondition",
    "RoutingDecision",
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
