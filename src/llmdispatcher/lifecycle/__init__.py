"""The life of one request, from its routing decision to the last byte of its answer.

* ``runner``: ``Runner`` tries a decision's candidates in order (retries decided by
  ``resilience.retry.RetryDecider``, fallbacks, hedging, one total deadline). One per dispatcher.
* ``scope``: ``AttemptScope``, one try against one deployment. Entering it reserves the rate
  limits and marks the deployment busy; leaving it settles the reservation and records the
  outcome (health, breaker, retry budget, the ``AttemptFinished`` event) — for a send when the
  answer is in, for a stream when its last chunk is read.
* ``kinds``: what one try does for each kind of request (``SendKind``, ``StreamKind``).
* ``hedge``: the race between two deployments when the first is slow.
* ``accounting``: per request, the spend budgets, the cost and the ``RequestFinished`` event.
"""
