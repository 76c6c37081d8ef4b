"""Suggestions: candidates for a reply, their ranking and the guard against invented commitments."""
