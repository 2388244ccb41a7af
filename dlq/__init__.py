"""Failure routing: dead-letter envelopes, inspection and replay."""
