"""The registry stage: entries, the sweep into registry files, validation, publishing (with its dataset card)
and the release's check of the packaged registry."""
