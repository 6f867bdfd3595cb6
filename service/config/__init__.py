"""Configuration: settings from the environment, route files, utterance files, rules and router policy."""
