"""How requests travel: chat requests and completions, the persistent response cache, the spending
guard and dry-run plan, and the backends that answer them (an OpenAI-compatible server, a local LM)."""

from .backend import (BackendError, BudgetExceeded, ChatBackend, ChatRequest, Completion, Plan, ResponseCache,
                      Usage)

__all__ = ["BackendError", "BudgetExceeded", "ChatBackend", "ChatRequest", "Completion", "Plan", "ResponseCache",
           "Usage"]
