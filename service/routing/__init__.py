"""From a request to a decision: rules, semantic stage, scoring, context, tie-breaker, model choice."""
