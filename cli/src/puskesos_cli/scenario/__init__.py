"""The year-end demo scenario: a synthetic population and the officers' work on it."""
