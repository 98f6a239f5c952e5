"""The registry stage: entries, the sweep into registry files, validation and publishing."""
