"""From a decision to an answer: the litellm call, the fallback chain and the checks on replies."""
