"""Telephony: the carrier's virtual-number platform behind a provider interface, and a
local simulated provider (see docs/virtual-numbers.md)."""
