"""Local scoring: support priorities, their explanations and reports (never uploaded)."""
