"""Human review of a filtered dataset: decisions store, queues, the local web app and the residual audit."""

from passkit.review.store import CLEAN, PROBLEM, UNDO, Decision, DecisionStore, decisions_path

__all__ = ["CLEAN", "PROBLEM", "UNDO", "Decision", "DecisionStore", "decisions_path"]
