"""The generate task."""
